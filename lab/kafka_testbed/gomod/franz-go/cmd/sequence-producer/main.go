// Command sequence-producer is tests/java/SequenceProducer.java for franz-go: it writes
// sequence-numbered records at a steady rate and prints one line per event, so the lab can tell,
// record by record, what a franz-go producer went through around a gateway switch.
// kafka_testbed.process_producers reads its output; kafka_testbed.go_programs builds it.
//
// Usage: sequence-producer <bootstrap> <topic> <seconds> <records-per-second> [key=value ...]
//
// The producer is franz-go's default: idempotent, acks=all, unlimited retries. Options:
//
//	first-seq=N              first sequence number (default 0), to keep producers apart
//	linger=DURATION          kgo.ProducerLinger (default 0)
//	delivery-timeout=DURATION  kgo.RecordDeliveryTimeout (default none), like Java's
//	                         delivery.timeout.ms
//	record-retries=N         kgo.RecordRetries (default unlimited)
//	metadata-max-age=DURATION  kgo.MetadataMaxAge (default 5m)
//	stop-on-data-loss=true   kgo.StopProducerOnDataLossDetected: OUT_OF_ORDER_SEQUENCE_NUMBER
//	                         and UNKNOWN_PRODUCER_ID fail the producer ID instead of franz-go's
//	                         default epoch bump, and the producer is FATAL
//	client-id=ID             kgo.ClientID
//	compression=CODEC        kgo.ProducerBatchCompression with one codec: none, gzip, snappy,
//	                         lz4 or zstd (default: franz-go's snappy, falling back to none)
//	flush-timeout=DURATION   how long the final flush may take (default 2m)
//
// DURATION is Go's syntax (500ms, 30s). Values are the sequence number as 12 digits
// (kafka_testbed.workloads.encode_value), keys "key-<seq mod 16>" (record_key). Times are the
// wall clock in epoch milliseconds. Prints, one line each:
//
//	SENT <seq> <epoch-ms>                       just before Produce
//	ACK <seq> <partition> <offset> <epoch-ms>   acknowledged
//	ERR <seq> <error type>: <message>           failed
//	FATAL <error type>: <message>               the client is unusable (see isFatal)
//	DONE                                        flushed and closed
//
// It stops at its time bound, after a FATAL, or on SIGTERM or SIGINT, flushing what was sent
// either way. Exit status: 0; 2 for a bad command line; 3 after a FATAL.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	exitUsage = 2
	exitFatal = 3
	// A pacing loop further behind than this (a blocked Produce) skips ahead instead of
	// bursting, as kafka_testbed.workloads.SequencedProducer does.
	maxCatchUp = time.Second
	keys       = 16
)

// producerIDErrors reach a record only once franz-go has failed the client's producer ID for
// good: the broker refused InitProducerID, or stop-on-data-loss turned an out-of-order or
// unknown producer into a failure. From then on every buffered and every later record fails
// with the same error: the client is unusable. By default franz-go bumps the epoch on
// OUT_OF_ORDER_SEQUENCE_NUMBER and UNKNOWN_PRODUCER_ID (KIP-360) and retries, so they never
// reach a record.
var producerIDErrors = []error{
	kerr.OutOfOrderSequenceNumber,
	kerr.UnknownProducerID,
	kerr.InvalidProducerIDMapping,
	kerr.InvalidProducerEpoch,
	kerr.ProducerFenced,
	kerr.ClusterAuthorizationFailed,
	kerr.TransactionalIDAuthorizationFailed,
}

func isFatal(err error) bool {
	for _, fatal := range producerIDErrors {
		if errors.Is(err, fatal) {
			return true
		}
	}
	return false
}

type settings struct {
	firstSeq     int64
	flushTimeout time.Duration
	opts         []kgo.Opt
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: sequence-producer <bootstrap> <topic> <seconds> <records-per-second> [key=value ...]")
		return exitUsage
	}
	seconds, err1 := strconv.ParseFloat(args[2], 64)
	rate, err2 := strconv.ParseFloat(args[3], 64)
	chosen, err3 := parseSettings(args[4:])
	if err := errors.Join(err1, err2, err3); err != nil || rate <= 0 {
		fmt.Fprintf(os.Stderr, "sequence-producer: bad arguments %q: %v\n", args, err)
		return exitUsage
	}
	p := &producer{topic: args[1], failed: make(chan struct{})}
	opts := append([]kgo.Opt{kgo.SeedBrokers(strings.Split(args[0], ",")...)}, chosen.opts...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		p.reportFatal(err)
		printLine("DONE")
		return exitFatal
	}
	p.client = client
	signalled, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	p.pace(signalled, deadline, time.Duration(float64(time.Second)/rate), chosen.firstSeq)
	flushing, cancel := context.WithTimeout(context.Background(), chosen.flushTimeout)
	if err := client.Flush(flushing); err != nil {
		fmt.Fprintf(os.Stderr, "sequence-producer: flush: %v\n", err)
	}
	cancel()
	client.Close() // fails whatever the flush left: their ERR lines come first
	printLine("DONE")
	if p.isFailed() {
		return exitFatal
	}
	return 0
}

func parseSettings(pairs []string) (settings, error) {
	chosen := settings{flushTimeout: 2 * time.Minute}
	for _, pair := range pairs {
		key, value, _ := strings.Cut(pair, "=")
		if err := chosen.set(key, value); err != nil {
			return chosen, fmt.Errorf("%s: %w", pair, err)
		}
	}
	return chosen, nil
}

func (s *settings) set(key, value string) error {
	var err error
	var duration time.Duration
	var number int
	switch key {
	case "first-seq":
		s.firstSeq, err = strconv.ParseInt(value, 10, 64)
	case "flush-timeout":
		s.flushTimeout, err = time.ParseDuration(value)
	case "linger":
		duration, err = time.ParseDuration(value)
		s.opts = append(s.opts, kgo.ProducerLinger(duration))
	case "delivery-timeout":
		duration, err = time.ParseDuration(value)
		s.opts = append(s.opts, kgo.RecordDeliveryTimeout(duration))
	case "metadata-max-age":
		duration, err = time.ParseDuration(value)
		s.opts = append(s.opts, kgo.MetadataMaxAge(duration))
	case "record-retries":
		number, err = strconv.Atoi(value)
		s.opts = append(s.opts, kgo.RecordRetries(number))
	case "client-id":
		s.opts = append(s.opts, kgo.ClientID(value))
	case "compression":
		var codec kgo.CompressionCodec
		codec, err = compressionCodec(value)
		s.opts = append(s.opts, kgo.ProducerBatchCompression(codec))
	case "stop-on-data-loss":
		var stop bool
		if stop, err = strconv.ParseBool(value); stop {
			s.opts = append(s.opts, kgo.StopProducerOnDataLossDetected())
		}
	default:
		err = errors.New("unknown option")
	}
	return err
}

var compressionCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	codec, ok := compressionCodecs[name]
	if !ok {
		return codec, errors.New("expected none, gzip, snappy, lz4 or zstd")
	}
	return codec, nil
}

type producer struct {
	client   *kgo.Client
	topic    string
	failed   chan struct{} // closed on the first FATAL
	failOnce sync.Once
}

// pace produces one record per interval until the deadline, a signal or a FATAL.
func (p *producer) pace(signalled context.Context, deadline time.Time, interval time.Duration, seq int64) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now()
	for {
		now := time.Now()
		if !now.Before(deadline) {
			return
		}
		if wait := next.Sub(now); wait > 0 {
			timer.Reset(min(wait, deadline.Sub(now)))
		} else {
			p.send(seq)
			seq++
			next = next.Add(interval)
			if behind := now.Add(-maxCatchUp); next.Before(behind) {
				next = behind
			}
			timer.Reset(0)
		}
		select {
		case <-signalled.Done():
			return
		case <-p.failed:
			return
		case <-timer.C:
		}
	}
}

func (p *producer) send(seq int64) {
	printLine("SENT %d %d", seq, time.Now().UnixMilli())
	record := &kgo.Record{
		Topic: p.topic,
		Key:   fmt.Appendf(nil, "key-%d", seq%keys),
		Value: fmt.Appendf(nil, "%012d", seq),
	}
	// Not the signal's context: a cancelled record context fails buffered records instead of
	// letting the final flush deliver them.
	p.client.Produce(context.Background(), record, func(r *kgo.Record, err error) {
		if err != nil {
			printLine("ERR %d %s", seq, describe(err))
			if isFatal(err) {
				p.reportFatal(err)
			}
			return
		}
		printLine("ACK %d %d %d %d", seq, r.Partition, r.Offset, time.Now().UnixMilli())
	})
}

func (p *producer) reportFatal(err error) {
	p.failOnce.Do(func() {
		printLine("FATAL %s", describe(err))
		close(p.failed)
	})
}

func (p *producer) isFailed() bool {
	select {
	case <-p.failed:
		return true
	default:
		return false
	}
}

var output sync.Mutex

// printLine writes one line in one write(2), so lines from callbacks never interleave.
func printLine(format string, args ...any) {
	line := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ") + "\n"
	output.Lock()
	defer output.Unlock()
	_, _ = os.Stdout.WriteString(line)
}

func describe(err error) string {
	return fmt.Sprintf("%T: %v", err, err)
}
