// Traffic for a broker that has just started, before anything depends on its answers.
//
// A JVM broker compiles its hot paths during its first seconds of traffic, and on two cores the
// compiler's threads take the CPU its request threads need: a job started with a new broker saw
// its readings acknowledged up to two seconds late for its first minute (REPORT.md). What warms
// it is the number of requests its paths serve, not the bytes: this sends the job's kinds of
// requests, many and small, through a topic of its own (deleted at the end): idempotent lz4
// produce without linger, read_committed fetches that return at once, and transactions carrying
// a group's offsets. Run by `docker/kafka-local.sh up` as a single-file program:
//
//   java -cp '<kafka lib>/*' Warmup.java BOOTSTRAP SECONDS RECORDS_PER_SECOND

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Warmup {
  static final String VALUE =
      "{\"patient_id\":\"p0001\",\"timestamp\":\"2025-11-19T07:15:00Z\",\"heart_rate_bpm\":80}";

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    long seconds = Long.parseLong(args[1]);
    int rate = Integer.parseInt(args[2]);
    String topic = "hr-warmup-" + ProcessHandle.current().pid() + "-" + System.currentTimeMillis();
    Properties common = new Properties();
    common.put("bootstrap.servers", bootstrap);
    try (Admin admin = Admin.create(common)) {
      admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
      AtomicBoolean done = new AtomicBoolean();
      AtomicLong read = new AtomicLong();
      Thread reader = new Thread(() -> read(common, topic, done, read));
      reader.start();
      Thread txns = new Thread(() -> transactions(common, topic, done));
      txns.start();
      long sent = produce(common, topic, seconds, rate);
      done.set(true);
      reader.join();
      txns.join();
      admin.deleteTopics(List.of(topic)).all().get();
      System.out.println(
          "warm-up: " + sent + " records sent, " + read.get() + " read, in " + seconds + " s");
    }
  }

  /** Idempotent lz4 records without linger, paced every millisecond: many small requests. */
  static long produce(Properties common, String topic, long seconds, int rate) {
    Properties pp = new Properties();
    pp.putAll(common);
    pp.put("compression.type", "lz4");
    pp.put("linger.ms", "0");
    long sent = 0;
    try (KafkaProducer<String, String> p =
        new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
      long start = System.nanoTime();
      long end = start + seconds * 1_000_000_000L;
      long now;
      while ((now = System.nanoTime()) < end) {
        long due = (now - start) * rate / 1_000_000_000L;
        for (; sent < due; sent++) {
          p.send(new ProducerRecord<>(topic, "p" + (sent % 1000), VALUE));
        }
        try {
          Thread.sleep(1);
        } catch (InterruptedException e) {
          break;
        }
      }
      p.flush();
    }
    return sent;
  }

  /** A read_committed consumer in a group, its fetches answered as soon as there is data. */
  static void read(Properties common, String topic, AtomicBoolean done, AtomicLong read) {
    Properties cp = new Properties();
    cp.putAll(common);
    cp.put("group.id", topic);
    cp.put("isolation.level", "read_committed");
    cp.put("auto.offset.reset", "earliest");
    cp.put("fetch.max.wait.ms", "5");
    try (KafkaConsumer<String, String> c =
        new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
      c.subscribe(List.of(topic));
      while (!done.get()) {
        read.addAndGet(c.poll(Duration.ofMillis(50)).count());
      }
    }
  }

  /** Ten transactions a second, each a few records and a group's offsets. */
  static void transactions(Properties common, String topic, AtomicBoolean done) {
    Properties tp = new Properties();
    tp.putAll(common);
    tp.put("transactional.id", topic);
    tp.put("compression.type", "lz4");
    try (KafkaProducer<String, String> p =
        new KafkaProducer<>(tp, new StringSerializer(), new StringSerializer())) {
      p.initTransactions();
      ConsumerGroupMetadata group = new ConsumerGroupMetadata(topic + "-txn");
      long n = 0;
      while (!done.get()) {
        p.beginTransaction();
        for (int i = 0; i < 10; i++) {
          p.send(new ProducerRecord<>(topic, "t" + (n++ % 1000), VALUE));
        }
        p.sendOffsetsToTransaction(
            Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(n)), group);
        p.commitTransaction();
        try {
          Thread.sleep(100);
        } catch (InterruptedException e) {
          break;
        }
      }
    }
  }
}
