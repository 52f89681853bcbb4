// The consuming side of SequenceProducer: a consumer group member with the client's defaults that
// prints every record it receives until it is stopped, so the lab can tell when a Java consumer
// resumed on the new cluster after a gateway switch (kafka_testbed.process_producers reads it).
//
// Usage: SequenceConsumer <bootstrap> <topic> <group> <seconds> [client.property=value ...]
//
// Defaults are the client's own (group.protocol classic, auto-commit every 5 s) except
// auto.offset.reset=earliest: a group new to a cluster reads that cluster's records from the
// start. Prints, one line each (times are the wall clock in epoch milliseconds):
//   RECV <seq> <partition> <offset> <epoch-ms>   a record whose value is a sequence number
//   DONE                                         closed (offsets committed)
// or FATAL <exception class>: <message> (exit status 1). It stops at its time bound or on
// SIGTERM.
import java.time.Duration;
import java.util.Collections;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

public final class SequenceConsumer {
    private static final Duration POLL = Duration.ofMillis(200);
    private static final Duration CLOSE = Duration.ofSeconds(5);

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: SequenceConsumer <bootstrap> <topic> <group> <seconds> [property=value ...]");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("group.id", args[2]);
        props.put("key.deserializer", ByteArrayDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        props.put("auto.offset.reset", "earliest");
        for (int i = 4; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            if (kv.length != 2) {
                System.err.println("expected property=value, got " + args[i]);
                System.exit(2);
            }
            props.put(kv[0], kv[1]);
        }
        int status = 0;
        long deadline = System.currentTimeMillis() + (long) (Double.parseDouble(args[3]) * 1000);
        KafkaConsumer<byte[], String> consumer = new KafkaConsumer<>(props);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup();
            try {
                closed.await();
            } catch (InterruptedException ignored) {
                // exiting anyway
            }
        }));
        try {
            consumer.subscribe(Collections.singletonList(args[1]));
            while (System.currentTimeMillis() < deadline) {
                print(consumer.poll(POLL));
            }
        } catch (WakeupException stopping) {
            // SIGTERM: close below
        } catch (Exception error) {
            status = 1;
            System.out.println("FATAL " + error.getClass().getName() + ": " + String.valueOf(error.getMessage()).replace('\n', ' '));
        } finally {
            consumer.close(CLOSE);
            System.out.println("DONE");
            System.out.flush();
            closed.countDown();
        }
        Runtime.getRuntime().halt(status);
    }

    private static void print(ConsumerRecords<byte[], String> records) {
        if (records.isEmpty()) {
            return;
        }
        long now = System.currentTimeMillis();
        StringBuilder lines = new StringBuilder();
        for (ConsumerRecord<byte[], String> record : records) {
            try {
                long seq = Long.parseLong(record.value());
                lines.append("RECV ").append(seq).append(' ').append(record.partition()).append(' ')
                        .append(record.offset()).append(' ').append(now).append('\n');
            } catch (NumberFormatException | NullPointerException notOurs) {
                // a record another writer put there
            }
        }
        System.out.print(lines);
        System.out.flush();
    }
}
