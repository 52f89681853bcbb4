// Kafka Streams word count with processing.guarantee=exactly_once_v2: the workload whose
// producer, consumer and group all run inside transactions, as real stream processors do.
//
// Input values are lines of words separated by spaces; output records are <word, count as text>,
// an update each time a word's count changes (the last one per word is its final count).
// Runs until the counts it emitted add up to --expected-words (every word of the input counted:
// the input lines alone are not enough, as counting happens after a repartition topic, which the
// second sub-topology reads only once the first one's transaction committed), waits for one more
// commit, closes cleanly (which commits), and prints the final counts it emitted.
//
// Usage: WordCountStreams --bootstrap=B --input=T --output=T --application-id=ID
//                         --expected-words=N --state-dir=PATH
//                         [--group-protocol=classic|streams] [--timeout-seconds=S]
//                         [streams.property=value ...]
// --group-protocol=streams is KIP-1071 (the broker's streams groups, Kafka 4.2+, feature
// streams.version=1); classic (the default) is the consumer-group rebalance protocol.
//
// Prints, one line each:
//   STATE <state>               (each state change of the KafkaStreams client, as it happens)
//   COUNT <word> <count>        (the last count the topology emitted for each word)
//   DONE lines=<input records seen> words=<distinct words> counted=<sum of the counts>
// or, on failure (exit status 1; 3 when the time bound ran out):
//   FAILED <exception class>: <message>
//   CAUSE  <exception class>: <message>      (for each cause in the chain)
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Produced;

public final class WordCountStreams {
    private static final long COMMIT_INTERVAL_MS = 200;
    private static final Duration CLOSE = Duration.ofSeconds(30);

    public static void main(String[] args) {
        Map<String, String> options = new HashMap<>();
        Properties props = new Properties();
        try {
            parse(args, options, props);
            long timeoutSeconds = Long.parseLong(options.getOrDefault("timeout-seconds", "120"));
            startWatchdog(timeoutSeconds);
            run(options, props);
        } catch (Exception error) {
            printFailure(error);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    private static void run(Map<String, String> options, Properties overrides) throws Exception {
        long expected = Long.parseLong(required(options, "expected-words"));
        AtomicLong lines = new AtomicLong();
        AtomicLong counted = new AtomicLong();
        Map<String, Long> counts = new ConcurrentHashMap<>();
        AtomicReference<Throwable> failure = new AtomicReference<>();

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(required(options, "input"), Consumed.with(Serdes.String(), Serdes.String()))
            .peek((key, line) -> lines.incrementAndGet())
            .flatMapValues(line -> Arrays.asList(line.toLowerCase().split("\\s+")))
            .filter((key, word) -> !word.isEmpty())
            .groupBy((key, word) -> word, Grouped.with(Serdes.String(), Serdes.String()))
            .count()
            .toStream()
            .peek((word, count) -> counted.addAndGet(count - counts.getOrDefault(word, 0L)))
            .peek(counts::put)
            .mapValues(String::valueOf)
            .to(required(options, "output"), Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(), streamsProperties(options, overrides));
        streams.setUncaughtExceptionHandler(error -> {
            failure.compareAndSet(null, error);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> System.out.println("STATE " + now));
        streams.start();
        while (counted.get() < expected && failure.get() == null) {
            Thread.sleep(100);
        }
        if (failure.get() == null) {
            Thread.sleep(3 * COMMIT_INTERVAL_MS);  // let the last records through one more commit
        }
        boolean closed = streams.close(CLOSE);
        if (failure.get() != null) {
            throw new IllegalStateException("Kafka Streams stopped on an uncaught exception", failure.get());
        }
        if (!closed) {
            throw new IllegalStateException("Kafka Streams did not close within " + CLOSE);
        }
        for (Map.Entry<String, Long> entry : new TreeMap<>(counts).entrySet()) {
            System.out.println("COUNT " + entry.getKey() + " " + entry.getValue());
        }
        System.out.println("DONE lines=" + lines.get() + " words=" + counts.size() + " counted=" + counted.get());
    }

    private static Properties streamsProperties(Map<String, String> options, Properties overrides) {
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, required(options, "bootstrap"));
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, required(options, "application-id"));
        props.put(StreamsConfig.STATE_DIR_CONFIG, required(options, "state-dir"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, String.valueOf(COMMIT_INTERVAL_MS));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        props.put("group.protocol", options.getOrDefault("group-protocol", "classic"));
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        props.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), "30000");
        props.put(StreamsConfig.producerPrefix("max.block.ms"), "30000");
        props.put(StreamsConfig.producerPrefix("delivery.timeout.ms"), "30000");
        props.put(StreamsConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        props.putAll(overrides);
        return props;
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
