// A producer that writes sequence-numbered records at a steady rate and prints one line per
// outcome, so tests can check exactly which records were acknowledged. Built against whichever
// kafka-clients version a test needs (3.7 has no KIP-899 rebootstrap; 4.x does).
//
// Usage: SequenceProducer <bootstrap> <topic> <seconds> <records-per-second> [key=value ...]
// Values are the sequence number as 12 digits (kafka_testbed.workloads.encode_value).
// Prints: "ACK <seq> <partition> <offset>" or "ERR <seq> <exception class>: <message>".
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

public final class SequenceProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        props.put("enable.idempotence", "true");
        props.put("acks", "all");
        for (int i = 4; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            props.put(kv[0], kv[1]);
        }
        String topic = args[1];
        long endAt = System.currentTimeMillis() + Long.parseLong(args[2]) * 1000L;
        long pauseNanos = 1_000_000_000L / Long.parseLong(args[3]);
        AtomicLong pending = new AtomicLong();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            long seq = 0;
            long next = System.nanoTime();
            while (System.currentTimeMillis() < endAt) {
                final long s = seq++;
                pending.incrementAndGet();
                producer.send(new ProducerRecord<>(topic, "key-" + (s % 16), String.format("%012d", s)),
                    (meta, error) -> {
                        pending.decrementAndGet();
                        if (error == null) {
                            System.out.println("ACK " + s + " " + meta.partition() + " " + meta.offset());
                        } else {
                            System.out.println("ERR " + s + " " + error.getClass().getName() + ": " + error.getMessage());
                        }
                    });
                next += pauseNanos;
                long sleep = next - System.nanoTime();
                if (sleep > 0) Thread.sleep(sleep / 1_000_000L, (int) (sleep % 1_000_000L));
            }
            producer.flush();
        }
        System.out.println("DONE");
        System.out.flush();
    }
}
