// A KIP-932 share-group consumer (queues for Kafka): KafkaShareConsumer, Java client 4.2 or newer,
// against a broker with share groups (Kafka 4.2+ finalizes share.version by default).
//
// A share group starts at the latest offset unless its group config says otherwise, and that
// config lives on the broker, not in the client: so first, through Admin, this sets the
// --group-config entries on the GROUP config resource (incrementalAlterConfigs; a share group's
// config may be set before the group exists). The default entries:
//   share.auto.offset.reset=earliest   read the records already in the topic;
//   share.assignment.interval.ms=0     assign at the member's first heartbeat. Kafka 4.4 computes
//                                      assignments in batches (every second by default) and
//                                      hands them out on a later heartbeat (every 5 s), which
//                                      made the first record arrive 6 s after joining, not 1 s.
//                                      Brokers before 4.4 may refuse this name: pass
//                                      --group-config=share.auto.offset.reset=earliest there.
// Then it subscribes, acknowledges every record explicitly (ACCEPT), commits the
// acknowledgements after each poll, and stops once it has seen --expected-records distinct
// records.
//
// Usage: ShareConsumer --bootstrap=B --topic=T --group=G --expected-records=N
//                      [--group-config=name=value,name=value...|none] [--timeout-seconds=S]
//                      [client.property=value ...]
// --group-config=none leaves the group config alone (no Admin call).
//
// Prints, one line each:
//   CONFIGURED <group config name>=<value>
//   RECORD <partition> <offset> <delivery count> <value>
//   DONE received=<records incl. redeliveries> distinct=<distinct partition/offset pairs>
// or, on failure (exit status 1; 3 when the time bound ran out):
//   FAILED <exception class>: <message>
//   CAUSE  <exception class>: <message>      (for each cause in the chain)
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;

public final class ShareConsumer {
    private static final Duration POLL = Duration.ofMillis(500);
    private static final Duration CLOSE = Duration.ofSeconds(5);
    private static final long ADMIN_TIMEOUT_SECONDS = 30;
    private static final String DEFAULT_GROUP_CONFIG =
        "share.auto.offset.reset=earliest,share.assignment.interval.ms=0";

    public static void main(String[] args) {
        Map<String, String> options = new HashMap<>();
        Properties props = new Properties();
        try {
            parse(args, options, props);
            startWatchdog(Long.parseLong(options.getOrDefault("timeout-seconds", "120")));
            String groupConfig = options.getOrDefault("group-config", DEFAULT_GROUP_CONFIG);
            if (!"none".equals(groupConfig)) {
                configureGroup(required(options, "bootstrap"), required(options, "group"), groupConfig, props);
            }
            consume(options, props);
        } catch (Exception error) {
            printFailure(error);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    private static void configureGroup(String bootstrap, String group, String entries, Properties overrides)
            throws Exception {
        List<AlterConfigOp> operations = new ArrayList<>();
        for (String entry : entries.split(",")) {
            String[] kv = entry.split("=", 2);
            operations.add(new AlterConfigOp(new ConfigEntry(kv[0], kv[1]), AlterConfigOp.OpType.SET));
        }
        Properties props = new Properties();
        props.putAll(overrides);
        props.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props)) {
            ConfigResource resource = new ConfigResource(ConfigResource.Type.GROUP, group);
            admin.incrementalAlterConfigs(Map.of(resource, operations))
                .all().get(ADMIN_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }
        for (AlterConfigOp operation : operations) {
            System.out.println("CONFIGURED " + operation.configEntry().name() + "=" + operation.configEntry().value());
        }
    }

    private static void consume(Map<String, String> options, Properties overrides) {
        long expected = Long.parseLong(required(options, "expected-records"));
        Properties props = new Properties();
        props.put("bootstrap.servers", required(options, "bootstrap"));
        props.put("group.id", required(options, "group"));
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        props.put("share.acknowledgement.mode", "explicit");
        props.putAll(overrides);
        Set<String> distinct = new HashSet<>();
        long received = 0;
        KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(props);
        consumer.subscribe(Collections.singletonList(required(options, "topic")));
        while (distinct.size() < expected) {
            for (ConsumerRecord<String, String> record : consumer.poll(POLL)) {
                consumer.acknowledge(record);
                received++;
                distinct.add(record.partition() + "/" + record.offset());
                Optional<Short> deliveries = record.deliveryCount();
                System.out.println("RECORD " + record.partition() + " " + record.offset() + " "
                    + deliveries.map(String::valueOf).orElse("-") + " " + record.value());
            }
            throwFirstFailure(consumer.commitSync());
        }
        consumer.close(CLOSE);
        System.out.println("DONE received=" + received + " distinct=" + distinct.size());
    }

    private static void throwFirstFailure(Map<TopicIdPartition, Optional<KafkaException>> results) {
        for (Optional<KafkaException> result : results.values()) {
            if (result.isPresent()) {
                throw result.get();
            }
        }
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
