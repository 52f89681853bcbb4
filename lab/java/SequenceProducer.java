// A producer that writes sequence-numbered records at a steady rate and prints one line per
// event, so tests can check exactly which records were sent and acknowledged, and when. Built
// against whichever kafka-clients version a test needs (3.7 has no KIP-899 rebootstrap; 4.x does).
// kafka_testbed.process_producers reads its output into the same log as the Python producers.
//
// Usage: SequenceProducer <bootstrap> <topic> <seconds> <records-per-second> [key=value ...]
// key=value pairs are producer configs (idempotent, acks=all unless overridden), except
// first-seq=N: the first sequence number (default 0), to keep several producers on one topic apart.
// Values are the sequence number as 12 digits (kafka_testbed.workloads.encode_value), keys
// "key-<seq mod 16>" (record_key). Times are the wall clock in epoch milliseconds.
// Prints, one line each:
//   SENT <seq> <epoch-ms>                       just before send()
//   ACK <seq> <partition> <offset> <epoch-ms>   acknowledged
//   ERR <seq> <exception class>: <message>      failed
//   FATAL <exception class>: <message>          the producer itself is unusable (see isFatal)
//   DONE                                        flushed and closed
// It stops at its time bound, after a FATAL, or on SIGTERM, flushing what was sent either way.
// Exit status: 0, or 3 after a FATAL.
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TransactionalIdAuthorizationException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringSerializer;

public final class SequenceProducer {
    static final int EXIT_FATAL = 3;
    /** A pacing loop further behind than this (a blocked send) skips ahead instead of bursting,
     * as kafka_testbed.workloads.SequencedProducer does. */
    static final long MAX_CATCH_UP_NANOS = 1_000_000_000L;
    /** How long a SIGTERM waits for the main thread to flush and close the producer. */
    static final long SHUTDOWN_WAIT_SECONDS = 300;

    // Unbuffered, so each line is one write(2): the JVM's System.out splits lines longer than its
    // 128-byte buffer, and the client's log lines on stderr (same file) could land in between.
    static final PrintStream OUT =
        new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);

    static final AtomicBoolean stopping = new AtomicBoolean();
    static final AtomicReference<String> fatal = new AtomicReference<>();

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        props.put("key.serializer", StringSerializer.class.getName());
        props.put("value.serializer", StringSerializer.class.getName());
        props.put("enable.idempotence", "true");
        props.put("acks", "all");
        long firstSeq = 0;
        for (int i = 4; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            if (kv[0].equals("first-seq")) {
                firstSeq = Long.parseLong(kv[1]);
            } else {
                props.put(kv[0], kv[1]);
            }
        }
        String topic = args[1];
        long runMillis = (long) (Double.parseDouble(args[2]) * 1000);
        long pauseNanos = (long) (1e9 / Double.parseDouble(args[3]));
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping.set(true);
            try {
                closed.await(SHUTDOWN_WAIT_SECONDS, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "flush-on-sigterm"));
        try {
            KafkaProducer<String, String> producer = new KafkaProducer<>(props);
            try {
                long endAt = System.currentTimeMillis() + runMillis; // from the producer's creation
                produce(producer, topic, firstSeq, endAt, pauseNanos);
            } finally {
                // close() first waits for every record sent, as flush() would; after a FATAL it
                // fails them at once instead (a flush could wait forever on a record the
                // producer will never send).
                producer.close(fatal.get() == null ? Duration.ofMillis(Long.MAX_VALUE) : Duration.ZERO);
            }
        } catch (Exception error) {
            reportFatal(error);
        }
        OUT.println("DONE");
        closed.countDown();
        if (fatal.get() != null) {
            // Not System.exit: during a SIGTERM's shutdown it would block forever.
            Runtime.getRuntime().halt(EXIT_FATAL);
        }
    }

    static void produce(KafkaProducer<String, String> producer, String topic, long firstSeq,
                        long endAt, long pauseNanos) throws InterruptedException {
        long seq = firstSeq;
        long next = System.nanoTime();
        while (System.currentTimeMillis() < endAt && !stopping.get() && fatal.get() == null) {
            final long s = seq++;
            OUT.println("SENT " + s + " " + System.currentTimeMillis());
            try {
                producer.send(new ProducerRecord<>(topic, "key-" + (s % 16), String.format("%012d", s)),
                    (meta, error) -> {
                        if (error == null) {
                            OUT.println("ACK " + s + " " + meta.partition() + " " + meta.offset() + " "
                                + System.currentTimeMillis());
                        } else {
                            OUT.println("ERR " + s + " " + describe(error));
                            if (isFatal(error)) reportFatal(error);
                        }
                    });
            } catch (RuntimeException error) {
                // send() throws (rather than calling back) only when the producer refuses records.
                OUT.println("ERR " + s + " " + describe(error));
                reportFatal(error);
            }
            long now = System.nanoTime();
            next = Math.max(next + pauseNanos, now - MAX_CATCH_UP_NANOS);
            long sleep = next - now;
            if (sleep > 0) Thread.sleep(sleep / 1_000_000L, (int) (sleep % 1_000_000L));
        }
    }

    /** Errors after which, per KafkaProducer#send's documentation, the only option is to close
     * the producer. Not OutOfOrderSequenceException: that list is for transactional producers; an
     * idempotent one fails the batch, bumps its epoch (KIP-360) and goes on. */
    static boolean isFatal(Throwable error) {
        for (Throwable cause = error; cause != null; cause = cause.getCause()) {
            if (cause instanceof ProducerFencedException
                || cause instanceof UnsupportedVersionException
                || cause instanceof ClusterAuthorizationException
                || cause instanceof TransactionalIdAuthorizationException
                || cause instanceof AuthenticationException) {
                return true;
            }
            if (cause.getCause() == cause) break;
        }
        return false;
    }

    static void reportFatal(Throwable error) {
        String line = describe(error);
        if (fatal.compareAndSet(null, line)) OUT.println("FATAL " + line);
    }

    static String describe(Throwable error) {
        return (error.getClass().getName() + ": " + error.getMessage()).replace('\n', ' ');
    }
}
