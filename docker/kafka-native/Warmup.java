// Traffic for a broker that has just started, before anything depends on its answers.
//
// A JVM broker compiles its hot paths during its first seconds of traffic, and on two cores the
// compiler's threads take the CPU its request threads need: a job started with a new broker saw
// its readings acknowledged up to two seconds late for its first minute (REPORT.md). What warms
// it is the number of requests its paths serve, not the bytes: this sends the job's kinds of
// requests, many and small, through a topic of its own (deleted at the end): idempotent produce
// without linger, uncompressed as monitors and hr-sim send readings, read_committed fetches that
// return at once, and lz4 transactions carrying a group's offsets as the job writes. The fetches
// come both as the Java consumer sends them (in a fetch session) and as librdkafka, the job's
// client, sends them: outside any session (session id 0, epoch -1), which the broker serves by
// its own code (its SessionlessFetchContext), otherwise first compiled while the job runs. And
// over and over, what a job's start asks: new topics, a new producer id, a new group joining from
// the earliest offsets, a new transactional producer, then the topics deleted. The optimizing
// compiler builds the broker's hot paths for what it has seen; a start it had not seen made it
// throw its compiled request handling away and compile it again while the job ran.
//
// How long: what the broker still has to compile when the warm-up stops, it compiles while the
// job runs, on the CPU the job's requests need. Given the broker's process id (Linux), the warm-up
// goes on after SECONDS until the broker's optimizing compiler (its C2 threads, read from
// /proc/PID/task) has used under a tenth of a core for two seconds in a row, up to three times
// SECONDS; without it, SECONDS. Run by `docker/kafka-local.sh up` as a single-file program:
//
//   java -cp '<kafka lib>/*' Warmup.java BOOTSTRAP SECONDS RECORDS_PER_SECOND [BROKER_PID CLK_TCK]

import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
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
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.message.FetchResponseData;
import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.record.RecordBatch;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.FetchMetadata;
import org.apache.kafka.common.requests.FetchRequest;
import org.apache.kafka.common.requests.FetchResponse;
import org.apache.kafka.common.requests.RequestHeader;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Warmup {
  static final String VALUE =
      "{\"patient_id\":\"p0001\",\"timestamp\":\"2025-11-19T07:15:00Z\",\"heart_rate_bpm\":80}";

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    long seconds = Long.parseLong(args[1]);
    int rate = Integer.parseInt(args[2]);
    Compiler compiler =
        args.length >= 5 ? new Compiler(Long.parseLong(args[3]), Long.parseLong(args[4])) : null;
    String topic = "hr-warmup-" + ProcessHandle.current().pid() + "-" + System.currentTimeMillis();
    Properties common = new Properties();
    common.put("bootstrap.servers", bootstrap);
    try (Admin admin = Admin.create(common)) {
      // The id comes with the creation's answer: a describe right after it may not find the topic
      // yet on a broker that has just started.
      var created = admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)));
      created.all().get();
      Uuid topicId = created.topicId(topic).get();
      AtomicBoolean done = new AtomicBoolean();
      AtomicLong read = new AtomicLong();
      AtomicLong readOutside = new AtomicLong();
      Thread reader = new Thread(() -> read(common, topic, done, read));
      reader.start();
      Thread outside =
          new Thread(() -> readOutsideSession(bootstrap, topic, topicId, done, readOutside));
      outside.start();
      Thread txns = new Thread(() -> transactions(common, topic, done));
      txns.start();
      AtomicLong cycles = new AtomicLong();
      Thread starts = new Thread(() -> starts(common, topic, done, cycles));
      starts.start();
      long start = System.nanoTime();
      long sent = produce(common, topic, rate, until(start, seconds, compiler));
      long took = (System.nanoTime() - start) / 1_000_000_000L;
      done.set(true);
      reader.join();
      outside.join();
      txns.join();
      starts.join();
      admin.deleteTopics(List.of(topic)).all().get();
      System.out.println(
          "warm-up: " + sent + " records sent, " + read.get() + " read in a fetch session and "
              + readOutside.get() + " outside one, " + cycles.get() + " job starts, in " + took
              + " s"
              + (compiler == null || compiler.unwatchable ? ""
                  : compiler.quiet ? " (the broker's compiler gone quiet)"
                  : " (the broker's compiler still busy)"));
    }
  }

  /**
   * When to stop: after `seconds`; with the broker's compiler to watch, once it has been quiet or
   * at three times `seconds`. Asked every millisecond; samples the compiler once a second.
   */
  static java.util.function.LongPredicate until(long start, long seconds, Compiler compiler) {
    long min = start + seconds * 1_000_000_000L;
    if (compiler == null) {
      return now -> now >= min;
    }
    long max = start + 3 * seconds * 1_000_000_000L;
    long[] nextSample = {start};
    return now -> {
      if (now >= nextSample[0]) {
        nextSample[0] = now + 1_000_000_000L;
        compiler.sample(now);
      }
      return now >= max || (now >= min && compiler.quiet);
    };
  }

  /** The CPU the broker's optimizing-compiler threads use, read from /proc once a second. */
  static final class Compiler {
    final Path tasks;
    final long ticksPerSecond;
    long lastTicks = -1;
    long lastAt;
    int quietSamples;
    boolean quiet;
    boolean unwatchable;

    Compiler(long pid, long ticksPerSecond) {
      this.tasks = Path.of("/proc", Long.toString(pid), "task");
      this.ticksPerSecond = ticksPerSecond;
    }

    void sample(long now) {
      long ticks = ticks();
      if (ticks < 0) {
        unwatchable = true; // not Linux, or the broker is gone: stop at SECONDS
        quiet = true;
        return;
      }
      if (lastTicks >= 0) {
        double cores = (ticks - lastTicks) / (double) ticksPerSecond / ((now - lastAt) / 1e9);
        quietSamples = cores < 0.1 ? quietSamples + 1 : 0;
        quiet = quietSamples >= 2;
      }
      lastTicks = ticks;
      lastAt = now;
    }

    /** User and system ticks of the threads named "C2 CompilerThread…"; -1 if unreadable. */
    long ticks() {
      try (var threads = Files.list(tasks)) {
        long sum = 0;
        for (Path t : (Iterable<Path>) threads::iterator) {
          try {
            String stat = Files.readString(t.resolve("stat"));
            String comm = stat.substring(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
            if (comm.startsWith("C2 Compiler")) {
              String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
              sum += Long.parseLong(f[11]) + Long.parseLong(f[12]);
            }
          } catch (IOException e) {
            // a thread that ended between the listing and the read
          }
        }
        return sum;
      } catch (IOException | RuntimeException e) {
        return -1;
      }
    }
  }

  /** Idempotent uncompressed records without linger, paced every millisecond: many requests. */
  static long produce(
      Properties common, String topic, int rate, java.util.function.LongPredicate stop) {
    long sent = 0;
    try (KafkaProducer<String, String> p = producer(common, "linger.ms", "0")) {
      long start = System.nanoTime();
      long now;
      while (!stop.test(now = System.nanoTime())) {
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

  /** A producer of strings with the common settings and `settings` (name, value, ...) added. */
  static KafkaProducer<String, String> producer(Properties common, String... settings) {
    Properties pp = new Properties();
    pp.putAll(common);
    for (int i = 0; i + 1 < settings.length; i += 2) {
      pp.put(settings[i], settings[i + 1]);
    }
    return new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer());
  }

  /**
   * A read_committed consumer in group `group` subscribed to `topic` from its earliest offsets,
   * its fetches answered as soon as there is data.
   */
  static KafkaConsumer<String, String> consumer(Properties common, String group, String topic) {
    Properties cp = new Properties();
    cp.putAll(common);
    cp.put("group.id", group);
    cp.put("isolation.level", "read_committed");
    cp.put("auto.offset.reset", "earliest");
    cp.put("fetch.max.wait.ms", "5");
    KafkaConsumer<String, String> c =
        new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer());
    c.subscribe(List.of(topic));
    return c;
  }

  /** Reads the topic in a group of its own until done. */
  static void read(Properties common, String topic, AtomicBoolean done, AtomicLong read) {
    try (KafkaConsumer<String, String> c = consumer(common, topic, topic)) {
      while (!done.get()) {
        read.addAndGet(c.poll(Duration.ofMillis(50)).count());
      }
    }
  }

  /** Ten transactions a second, each a few records and a group's offsets. */
  static void transactions(Properties common, String topic, AtomicBoolean done) {
    try (KafkaProducer<String, String> p =
        producer(common, "transactional.id", topic, "compression.type", "lz4")) {
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

  /**
   * What a job's start asks of the broker, over and over: new topics, a new idempotent producer
   * (a new producer id) writing to them, a new group joining them from the earliest offsets and
   * committing, a new transactional producer with a group's offsets, then all of it gone and the
   * topic and group deleted. The broker's optimizing compiler builds its hot paths for what it
   * has seen: without this, the first start after the warm-up sent the broker down branches and
   * receiver types it had not seen (new partitions, segments and producer ids), and it threw its
   * compiled request handling away and compiled it again while the job ran.
   */
  static void starts(Properties common, String topic, AtomicBoolean done, AtomicLong cycles) {
    try (Admin admin = Admin.create(common)) {
      for (long n = 0; !done.get(); n++) {
        String t = topic + "-start-" + n;
        admin.createTopics(List.of(new NewTopic(t, 3, (short) 1))).all().get();
        // Bounded: a batch the broker refuses for good (an out-of-order sequence on the topic just
        // created, in 6 of 131 warm-ups) was retried for the producer's default two minutes, and
        // `up` waited that long for it.
        KafkaProducer<String, String> idempotent =
            producer(common, "linger.ms", "0", "request.timeout.ms", "5000",
                "delivery.timeout.ms", "10000");
        try {
          for (int i = 0; i < 100; i++) {
            idempotent.send(new ProducerRecord<>(t, "p" + i, VALUE));
          }
        } finally {
          idempotent.close(Duration.ofSeconds(10));
        }
        try (KafkaConsumer<String, String> c = consumer(common, t, t)) {
          long deadline = System.nanoTime() + 2_000_000_000L;
          for (int got = 0; got < 100 && System.nanoTime() < deadline && !done.get(); ) {
            got += c.poll(Duration.ofMillis(50)).count();
          }
          c.commitSync();
        }
        KafkaProducer<String, String> p =
            producer(common, "transactional.id", t, "max.block.ms", "10000",
                "request.timeout.ms", "5000", "delivery.timeout.ms", "10000");
        try {
          p.initTransactions();
          p.beginTransaction();
          p.send(new ProducerRecord<>(t, "a", VALUE));
          p.sendOffsetsToTransaction(
              Map.of(new TopicPartition(t, 0), new OffsetAndMetadata(100)),
              new ConsumerGroupMetadata(t));
          p.commitTransaction();
        } finally {
          p.close(Duration.ofSeconds(10));
        }
        admin.deleteTopics(List.of(t)).all().get();
        admin.deleteConsumerGroups(List.of(t)).all().get();
        cycles.incrementAndGet();
      }
    } catch (Exception e) {
      // Best effort, as the rest of the warm-up: the broker is up either way.
      System.err.println("The warm-up's job starts stopped: " + e);
    }
  }

  /**
   * read_committed fetches as librdkafka sends them: outside a fetch session, every partition
   * named in every request, answered as soon as there is data (at most 5 ms). The Java consumer
   * has no setting for this, so the requests are written on a socket of their own.
   */
  static void readOutsideSession(
      String bootstrap, String topic, Uuid topicId, AtomicBoolean done, AtomicLong read) {
    String[] hostPort = bootstrap.split(",")[0].split(":");
    short version = ApiKeys.FETCH.latestVersion() < 16 ? ApiKeys.FETCH.latestVersion() : 16;
    long[] next = new long[3];
    try (SocketChannel ch =
        SocketChannel.open(new InetSocketAddress(hostPort[0], Integer.parseInt(hostPort[1])))) {
      ch.socket().setTcpNoDelay(true);
      for (int correlation = 1; !done.get(); correlation++) {
        Map<TopicPartition, FetchRequest.PartitionData> partitions = new LinkedHashMap<>();
        for (int p = 0; p < next.length; p++) {
          partitions.put(
              new TopicPartition(topic, p),
              new FetchRequest.PartitionData(topicId, next[p], -1, 1 << 20, Optional.empty()));
        }
        FetchRequest request =
            FetchRequest.Builder.forConsumer(version, 5, 1, partitions)
                .isolationLevel(IsolationLevel.READ_COMMITTED)
                .metadata(FetchMetadata.LEGACY)
                .build(version);
        RequestHeader header = new RequestHeader(ApiKeys.FETCH, version, "hr-warmup", correlation);
        ByteBuffer body = request.serializeWithHeader(header);
        ByteBuffer size = ByteBuffer.allocate(4).putInt(0, body.remaining());
        while (size.hasRemaining() || body.hasRemaining()) {
          ch.write(new ByteBuffer[] {size, body});
        }
        FetchResponse response =
            (FetchResponse) AbstractResponse.parseResponse(receive(ch), header);
        for (Map.Entry<TopicPartition, FetchResponseData.PartitionData> e :
            response.responseData(Map.of(topicId, topic), version).entrySet()) {
          for (RecordBatch batch : FetchResponse.recordsOrFail(e.getValue()).batches()) {
            next[e.getKey().partition()] = batch.nextOffset();
            if (!batch.isControlBatch()) {
              read.addAndGet(batch.nextOffset() - batch.baseOffset());
            }
          }
        }
      }
    } catch (IOException e) {
      System.err.println("warm-up: fetching outside a session: " + e);
    }
  }

  /** One size-prefixed response from `ch`. */
  static ByteBuffer receive(SocketChannel ch) throws IOException {
    ByteBuffer size = ByteBuffer.allocate(4);
    fill(ch, size);
    ByteBuffer body = ByteBuffer.allocate(size.getInt(0));
    fill(ch, body);
    return body.flip();
  }

  static void fill(SocketChannel ch, ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      if (ch.read(b) < 0) {
        throw new IOException("the broker closed the connection");
      }
    }
  }
}
