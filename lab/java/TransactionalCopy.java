// Exactly-once with the plain Java clients, in the two shapes applications use transactions:
//
//   copy:    consume-transform-produce. Reads an input topic (read_committed) in a consumer group,
//            writes every record to an output topic and commits the input offsets inside the same
//            transaction (sendOffsetsToTransaction with the consumer's group metadata), N records
//            per transaction. Every k-th transaction attempt is aborted and its batch read again
//            from where it started, so the output ends with every input record exactly once.
//   produce: M transactions of R records each, every k-th one aborted, nothing consumed.
//
// Record values are the 12-digit sequence numbers of kafka_testbed.workloads.encode_value: produce
// numbers them 0, 1, 2, ... across all transactions; copy writes each input value unchanged.
// Compiles against kafka-clients 3.7 and 4.x alike (no API newer than 2.5 is used).
//
// Usage: TransactionalCopy copy    --bootstrap=B --input=T --output=T --group=G
//                                  --transactional-id=ID --expected-records=N --batch=N
//                                  [--abort-every=K] [--timeout-seconds=S] [client.property=value ...]
//        TransactionalCopy produce --bootstrap=B --output=T --transactional-id=ID
//                                  --transactions=M --batch=R
//                                  [--abort-every=K] [--timeout-seconds=S] [client.property=value ...]
// --abort-every=0 (the default) aborts nothing; K must otherwise be 2 or more, so that no two
// attempts in a row abort and the job always moves on (a batch read again after an abort may be
// aborted again later, and is then read once more). client.property=value goes to every client.
// copy also takes --recover=true: an attempt that fails is handled as Kafka's documentation tells
// applications to (an abortable error: abortTransaction and read the batch again; a fatal one,
// such as ProducerFencedException: a new producer, initTransactions, read the batch again) and
// printed as RECOVERED <attempt> abortable|fatal <exception>; and --pause-ms=N between attempts.
// --tag-attempts=true appends "@<attempt>" to every value copied and prints each attempt as it
// begins (ATTEMPT <attempt> <count> <seqs>), so a reader can tell which transaction wrote what.
//
// Prints, one line each:
//   COMMITTED <attempt> <record count> <comma-separated sequence numbers>
//   ABORTED   <attempt> <record count> <comma-separated sequence numbers>
//   DONE committed_transactions=<c> aborted_transactions=<a> committed_records=<r>
// or, on failure (exit status 1; 3 when the time bound ran out):
//   FAILED <exception class>: <message>
//   CAUSE  <exception class>: <message>      (for each cause in the chain)
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TransactionalCopy {
    private static final Duration POLL = Duration.ofMillis(200);
    private static final Duration CLOSE = Duration.ofSeconds(5);

    private final Map<String, String> options = new HashMap<>();
    private final Properties clientProperties = new Properties();
    private int attempts;
    private int committedTransactions;
    private int abortedTransactions;
    private long committedRecords;

    public static void main(String[] args) {
        TransactionalCopy program = new TransactionalCopy();
        try {
            program.parse(args);
            startWatchdog(program.longOption("timeout-seconds", 120));
            if ("copy".equals(args[0])) {
                program.copy();
            } else if ("produce".equals(args[0])) {
                program.produce();
            } else {
                throw new IllegalArgumentException("mode must be copy or produce, not " + args[0]);
            }
        } catch (Exception error) {
            printFailure(error);
            System.out.flush();
            Runtime.getRuntime().halt(1);
        }
        System.out.println("DONE committed_transactions=" + program.committedTransactions
            + " aborted_transactions=" + program.abortedTransactions
            + " committed_records=" + program.committedRecords);
        System.out.flush();
        Runtime.getRuntime().halt(0);
    }

    private void copy() throws Exception {
        long expected = longOption("expected-records", -1);
        int batch = (int) longOption("batch", 10);
        // Not try-with-resources: on failure the program prints and halts at once, whereas a
        // close without a bound could wait for unsendable records until the watchdog fires.
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProperties(batch));
        KafkaProducer<String, String> producer = new KafkaProducer<>(producerProperties());
        consumer.subscribe(Collections.singletonList(option("input")));
        producer.initTransactions();
        List<ConsumerRecord<String, String>> pending = new ArrayList<>();
        boolean recover = "true".equals(options.get("recover"));
        long pauseMs = longOption("pause-ms", 0);
        while (committedRecords < expected) {
            List<ConsumerRecord<String, String>> records = nextBatch(consumer, pending, batch);
            if (records.isEmpty()) {
                continue;
            }
            try {
                attempt(producer, consumer, records, pending);
            } catch (ProducerFencedException | OutOfOrderSequenceException | AuthorizationException
                     | UnsupportedVersionException fatal) {
                if (!recover) {
                    throw fatal;
                }
                recovered("fatal", fatal);
                producer.close(Duration.ZERO);
                producer = new KafkaProducer<>(producerProperties());
                producer.initTransactions();
                rewind(consumer, records, pending);
            } catch (KafkaException abortable) {
                if (!recover) {
                    throw abortable;
                }
                recovered("abortable", abortable);
                producer = abortOrRenew(producer);
                rewind(consumer, records, pending);
            }
            if (pauseMs > 0) {
                Thread.sleep(pauseMs);
            }
        }
        producer.close(CLOSE);
        consumer.close(CLOSE);
    }

    private void attempt(KafkaProducer<String, String> producer, KafkaConsumer<String, String> consumer,
                         List<ConsumerRecord<String, String>> records,
                         List<ConsumerRecord<String, String>> pending) {
        boolean abort = beginAttempt();
        if ("true".equals(options.get("tag-attempts"))) {
            List<String> inputs = new ArrayList<>();
            for (ConsumerRecord<String, String> record : records) {
                inputs.add(record.value());
            }
            System.out.println("ATTEMPT " + attempts + " " + inputs.size() + " " + joinSequences(inputs));
        }
        producer.beginTransaction();
        List<String> values = sendAll(producer, records);
        producer.sendOffsetsToTransaction(nextOffsets(records), consumer.groupMetadata());
        if (abort) {
            abortAfterFlush(producer, values);
            rewind(consumer, records, pending);
        } else {
            producer.commitTransaction();
            committed(values);
        }
    }

    // An abort that itself fails (the producer went fatal meanwhile) is followed by a new producer.
    private KafkaProducer<String, String> abortOrRenew(KafkaProducer<String, String> producer) {
        try {
            producer.abortTransaction();
            return producer;
        } catch (KafkaException failed) {
            recovered("fatal", failed);
            producer.close(Duration.ZERO);
            KafkaProducer<String, String> renewed = new KafkaProducer<>(producerProperties());
            renewed.initTransactions();
            return renewed;
        }
    }

    private void recovered(String kind, Exception error) {
        System.out.println("RECOVERED " + attempts + " " + kind + " " + error.getClass().getName()
            + ": " + oneLine(error.getMessage()));
        System.out.flush();
    }

    private void produce() throws Exception {
        int transactions = (int) longOption("transactions", 1);
        int batch = (int) longOption("batch", 10);
        KafkaProducer<String, String> producer = new KafkaProducer<>(producerProperties());
        producer.initTransactions();
        long seq = 0;
        for (int t = 0; t < transactions; t++) {
            boolean abort = beginAttempt();
            producer.beginTransaction();
            List<Future<RecordMetadata>> sends = new ArrayList<>();
            List<String> values = new ArrayList<>();
            for (int i = 0; i < batch; i++, seq++) {
                String value = String.format("%012d", seq);
                sends.add(producer.send(new ProducerRecord<>(option("output"), "key-" + (seq % 16), value)));
                values.add(value);
            }
            if (abort) {
                abortAfterFlush(producer, values);
            } else {
                producer.commitTransaction();
                committed(values);
            }
            for (Future<RecordMetadata> send : sends) {
                send.get();  // a record that failed must fail the program, committed or not
            }
        }
        producer.close(CLOSE);
    }

    // The next transaction's records: what is left over from the last poll first, then new polls,
    // at most `batch` records. Polling may return more than needed; the rest waits in `pending`.
    private List<ConsumerRecord<String, String>> nextBatch(
            KafkaConsumer<String, String> consumer, List<ConsumerRecord<String, String>> pending, int batch) {
        long wanted = Math.min(batch, longOption("expected-records", -1) - committedRecords);
        if (pending.isEmpty()) {
            for (ConsumerRecord<String, String> record : consumer.poll(POLL)) {
                pending.add(record);
            }
        }
        int take = (int) Math.min(wanted, pending.size());
        List<ConsumerRecord<String, String>> records = new ArrayList<>(pending.subList(0, take));
        pending.subList(0, take).clear();
        return records;
    }

    private boolean beginAttempt() {
        attempts++;
        long abortEvery = longOption("abort-every", 0);
        return abortEvery > 0 && attempts % abortEvery == 0;
    }

    private List<String> sendAll(KafkaProducer<String, String> producer, List<ConsumerRecord<String, String>> records) {
        List<String> values = new ArrayList<>();
        String tag = "true".equals(options.get("tag-attempts")) ? "@" + attempts : "";
        for (ConsumerRecord<String, String> record : records) {
            producer.send(new ProducerRecord<>(option("output"), record.key(), record.value() + tag));
            values.add(record.value());
        }
        return values;
    }

    // Flushed first so that the aborted records really are in the log (read_uncommitted sees them).
    private void abortAfterFlush(KafkaProducer<String, String> producer, List<String> values) {
        producer.flush();
        producer.abortTransaction();
        abortedTransactions++;
        System.out.println("ABORTED " + attempts + " " + values.size() + " " + joinSequences(values));
    }

    private void committed(List<String> values) {
        committedTransactions++;
        committedRecords += values.size();
        System.out.println("COMMITTED " + attempts + " " + values.size() + " " + joinSequences(values));
    }

    private static Map<TopicPartition, OffsetAndMetadata> nextOffsets(List<ConsumerRecord<String, String>> records) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (ConsumerRecord<String, String> record : records) {
            offsets.put(new TopicPartition(record.topic(), record.partition()), new OffsetAndMetadata(record.offset() + 1));
        }
        return offsets;
    }

    // After an abort the consumer must read the batch again: seek every partition of the batch,
    // and of the records polled but not yet used, back to its earliest offset among them.
    private static void rewind(KafkaConsumer<String, String> consumer,
                               List<ConsumerRecord<String, String>> records,
                               List<ConsumerRecord<String, String>> pending) {
        Map<TopicPartition, Long> earliest = new HashMap<>();
        List<ConsumerRecord<String, String>> unused = new ArrayList<>(records);
        unused.addAll(pending);
        for (ConsumerRecord<String, String> record : unused) {
            earliest.merge(new TopicPartition(record.topic(), record.partition()), record.offset(), Math::min);
        }
        earliest.forEach(consumer::seek);
        pending.clear();
    }

    private Properties consumerProperties(int batch) {
        Properties props = new Properties();
        props.put("bootstrap.servers", option("bootstrap"));
        props.put("group.id", option("group"));
        props.put("key.deserializer", StringDeserializer.class.getName());
        props.put("value.deserializer", StringDeserializer.class.getName());
        props.put("isolation.level", "read_committed");
        props.put("enable.auto.commit", "false");
        props.put("auto.offset.reset", "earliest");
        props.put("max.poll.records", String.valueOf(batch));
        props.putAll(clientProperties);
        return props;
    }

    private Properties producerProperties() {
        Properties props = new Properties();
        props.put("bootstrap.servers", option("bootstrap"));
        props.put("transactional.id", option("transactional-id"));
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        props.put("acks", "all");
        props.put("enable.idempotence", "true");
        props.put("transaction.timeout.ms", "30000");
        props.put("max.block.ms", "30000");
        props.put("request.timeout.ms", "10000");
        props.put("delivery.timeout.ms", "30000");
        props.putAll(clientProperties);
        return props;
    }

    private static String joinSequences(List<String> values) {
        StringBuilder joined = new StringBuilder();
        for (String value : values) {
            if (joined.length() > 0) {
                joined.append(',');
            }
            joined.append(Long.parseLong(value.substring(0, 12)));
        }
        return joined.toString();
    }

    private void parse(String[] args) {
        if (args.length == 0) {
            throw new IllegalArgumentException("usage: TransactionalCopy copy|produce --name=value ... [property=value ...]");
        }
        for (int i = 1; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            if (kv.length != 2) {
                throw new IllegalArgumentException("expected name=value, got " + args[i]);
            }
            if (kv[0].startsWith("--")) {
                options.put(kv[0].substring(2), kv[1]);
            } else {
                clientProperties.put(kv[0], kv[1]);
            }
        }
        long abortEvery = longOption("abort-every", 0);
        if (abortEvery == 1 || abortEvery < 0) {
            throw new IllegalArgumentException("--abort-every must be 0 (never) or at least 2, got " + abortEvery);
        }
    }

    private String option(String name) {
        String value = options.get(name);
        if (value == null) {
            throw new IllegalArgumentException("missing --" + name + "=...");
        }
        return value;
    }

    private long longOption(String name, long fallback) {
        String value = options.get(name);
        if (value == null && fallback < 0) {
            throw new IllegalArgumentException("missing --" + name + "=...");
        }
        return value == null ? fallback : Long.parseLong(value);
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
