// A consumer-group member that reads a known number of records and commits them, with the group
// protocol chosen on the command line: "consumer" is KIP-848 (the broker assigns partitions,
// members heartbeat with ConsumerGroupHeartbeat; Java client 3.7+, default-on brokers 4.0+),
// "classic" is the JoinGroup/SyncGroup protocol every client and broker speaks.
//
// Usage: GroupConsumer --bootstrap=B --topic=T --group=G --expected-records=N
//                      [--group-protocol=consumer|classic] [--timeout-seconds=S]
//                      [client.property=value ...]
//
// Prints, one line each:
//   RECORD <partition> <offset> <value>
//   COMMITTED <partition> <offset>          (read back from the group coordinator after commitSync)
//   DONE received=<records> protocol=<group.protocol>
// or, on failure (exit status 1; 3 when the time bound ran out):
//   FAILED <exception class>: <message>
//   CAUSE  <exception class>: <message>      (for each cause in the chain)
import java.time.Duration;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;

public final class GroupConsumer {
    private static final Duration POLL = Duration.ofMillis(500);
    private static final Duration CLOSE = Duration.ofSeconds(5);
    private static final Duration COMMIT = Duration.ofSeconds(30);

    public static void main(String[] args) {
        Map<String, String> options = new HashMap<>();
        Properties props = new Properties();
        try {
            parse(args, options, props);
            startWatchdog(Long.parseLong(options.getOrDefault("timeout-seconds", "120")));
            consume(options, props);
        } catch (Exception error) {
            printFailure(error);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    private static void consume(Map<String, String> options, Properties overrides) {
        long expected = Long.parseLong(required(options, "expected-records"));
        String protocol = options.getOrDefault("group-protocol", "consumer");
        Properties props = new Properties();
        props.put("bootstrap.servers", required(options, "bootstrap"));
        props.put("group.id", required(options, "group"));
        props.put("group.protocol", protocol);
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        props.put("enable.auto.commit", "false");
        props.put("auto.offset.reset", "earliest");
        props.putAll(overrides);
        long received = 0;
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props);
        consumer.subscribe(Collections.singletonList(required(options, "topic")));
        while (received < expected) {
            for (ConsumerRecord<String, String> record : consumer.poll(POLL)) {
                received++;
                System.out.println("RECORD " + record.partition() + " " + record.offset() + " " + record.value());
            }
        }
        consumer.commitSync(COMMIT);
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(consumer.assignment(), COMMIT);
        for (Map.Entry<Integer, OffsetAndMetadata> entry : byPartition(committed).entrySet()) {
            System.out.println("COMMITTED " + entry.getKey() + " " + entry.getValue().offset());
        }
        consumer.close(CLOSE);
        System.out.println("DONE received=" + received + " protocol=" + protocol);
    }

    private static Map<Integer, OffsetAndMetadata> byPartition(Map<TopicPartition, OffsetAndMetadata> committed) {
        Map<Integer, OffsetAndMetadata> result = new TreeMap<>();
        committed.forEach((partition, offset) -> {
            if (offset != null) {
                result.put(partition.partition(), offset);
            }
        });
        return result;
    }

    private static void parse(String[] args, Map<String, String> options, Properties props) {
        for (String arg : args) {
            String[] kv = arg.split("=", 2);
            if (kv.length != 2) {
                throw new IllegalArgumentException("expected name=value, got " + arg);
            }
            if (kv[0].startsWith("--")) {
                options.put(kv[0].substring(2), kv[1]);
            } else {
                props.put(kv[0], kv[1]);
            }
        }
    }

    private static String required(Map<String, String> options, String name) {
        String value = options.get(name);
        if (value == null) {
            throw new IllegalArgumentException("missing --" + name + "=...");
        }
        return value;
    }

    private static void startWatchdog(long seconds) {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(seconds * 1000L);
            } catch (InterruptedException ignored) {
                return;
            }
            System.out.println("FAILED timeout: not done within " + seconds + " s");
            System.out.flush();
            Runtime.getRuntime().halt(3);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
    }

    private static void printFailure(Throwable error) {
        System.out.println("FAILED " + error.getClass().getName() + ": " + oneLine(error.getMessage()));
        for (Throwable cause = error.getCause(); cause != null && cause != cause.getCause(); cause = cause.getCause()) {
            System.out.println("CAUSE " + cause.getClass().getName() + ": " + oneLine(cause.getMessage()));
        }
    }

    private static String oneLine(String message) {
        return message == null ? "" : message.replace('\n', ' ');
    }
}
