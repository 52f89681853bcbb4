// The Java client's side of bench/switch_latency.py: a KafkaProducer with default settings that
// sends sequence-numbered keyed records at a steady rate and prints, one line each, when every
// record was sent and acknowledged. Times are System.nanoTime(), which on Linux is
// CLOCK_MONOTONIC: the same clock as Python's time.monotonic(), so the bench compares them as is.
//
//   java SequencedProducer BOOTSTRAP TOPIC RECORDS_PER_SECOND
//   stdout: "S <seq> <nanos>" (sent), "A <seq> <nanos>" (acked), "E <seq> <nanos> <error>"
// SIGTERM stops sending, flushes (at most 30 s) and exits.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class SequencedProducer {
    private static final long MAX_CATCH_UP_NANOS = 1_000_000_000L;
    private static volatile boolean running = true;

    public static void main(String[] args) throws InterruptedException {
        String bootstrap = args[0];
        String topic = args[1];
        long interval = (long) (1e9 / Double.parseDouble(args[2]));
        CountDownLatch closed = new CountDownLatch(1);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            running = false;
            LockSupport.unpark(main);
            try {
                closed.await(40, TimeUnit.SECONDS);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }));
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(settings(bootstrap))) {
            produce(producer, topic, interval);
            producer.flush();
        } finally {
            System.out.flush();
            closed.countDown();
        }
    }

    private static Properties settings(String bootstrap) {
        Properties properties = new Properties();
        properties.put("bootstrap.servers", bootstrap);
        properties.put("key.serializer", ByteArraySerializer.class.getName());
        properties.put("value.serializer", ByteArraySerializer.class.getName());
        return properties;
    }

    private static void produce(KafkaProducer<byte[], byte[]> producer, String topic, long interval) {
        long next = System.nanoTime();
        for (long seq = 0; running; ) {
            long now = System.nanoTime();
            if (now < next) {
                LockSupport.parkNanos(next - now);
                continue;
            }
            send(producer, topic, seq++);
            next = Math.max(next + interval, now - MAX_CATCH_UP_NANOS);
        }
    }

    private static void send(KafkaProducer<byte[], byte[]> producer, String topic, long seq) {
        byte[] key = ("key-" + (seq % 16)).getBytes(StandardCharsets.US_ASCII);
        byte[] value = String.format("%012d", seq).getBytes(StandardCharsets.US_ASCII);
        emit("S " + seq + " " + System.nanoTime());
        producer.send(new ProducerRecord<>(topic, key, value), (metadata, error) -> {
            long at = System.nanoTime();
            emit(error == null ? "A " + seq + " " + at : "E " + seq + " " + at + " " + error);
        });
    }

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
