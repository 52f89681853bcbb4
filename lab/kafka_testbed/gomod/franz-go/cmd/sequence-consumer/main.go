// Command sequence-consumer is the consuming side of sequence-producer: a franz-go consumer group
// member that prints every record it receives, so the lab can tell when a franz-go consumer
// resumed on the new cluster after a gateway switch. kafka_testbed.process_producers reads its
// output; kafka_testbed.go_programs builds it.
//
// Usage: sequence-consumer <bootstrap> <topic> <group> <seconds> [key=value ...]
//
// The consumer is franz-go's default group member (cooperative-sticky balancer, autocommit every
// 5 s, committed on close), reading from the start of each partition when the group has no
// offset there. Options:
//
//	client-id=ID             kgo.ClientID
//	log-level=LEVEL          franz-go's own log to stderr (which the lab records with stdout):
//	                         error, warn, info or debug; none by default
//
// Prints, one line each (times are the wall clock in epoch milliseconds):
//
//	RECV <seq> <partition> <offset> <epoch-ms>  a record whose value is a sequence number
//	ERR <partition> <error type>: <message>     a fetch error franz-go reported
//	DONE                                        closed (offsets committed)
//
// It stops at its time bound or on SIGTERM or SIGINT. Exit status: 0; 2 for a bad command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const exitUsage = 2

var logLevels = map[string]kgo.LogLevel{
	"error": kgo.LogLevelError,
	"warn":  kgo.LogLevelWarn,
	"info":  kgo.LogLevelInfo,
	"debug": kgo.LogLevelDebug,
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: sequence-consumer <bootstrap> <topic> <group> <seconds> [key=value ...]")
		return exitUsage
	}
	seconds, err := strconv.ParseFloat(args[3], 64)
	opts, optsErr := parseOptions(args[4:])
	if err := errors.Join(err, optsErr); err != nil {
		fmt.Fprintf(os.Stderr, "sequence-consumer: bad arguments %q: %v\n", args, err)
		return exitUsage
	}
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(args[0], ",")...),
		kgo.ConsumerGroup(args[2]),
		kgo.ConsumeTopics(args[1]),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, opts...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sequence-consumer: %v\n", err)
		return exitUsage
	}
	signalled, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	bounded, cancel := context.WithTimeout(signalled, time.Duration(seconds*float64(time.Second)))
	defer cancel()
	consume(bounded, client)
	client.Close() // commits what was consumed and leaves the group
	fmt.Println("DONE")
	return 0
}

func parseOptions(pairs []string) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	for _, pair := range pairs {
		key, value, _ := strings.Cut(pair, "=")
		switch key {
		case "client-id":
			opts = append(opts, kgo.ClientID(value))
		case "log-level":
			level, ok := logLevels[value]
			if !ok {
				return nil, fmt.Errorf("%s: log-level is one of error, warn, info, debug", pair)
			}
			opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil)))
		default:
			return nil, fmt.Errorf("%s: unknown option", pair)
		}
	}
	return opts, nil
}

func consume(ctx context.Context, client *kgo.Client) {
	for ctx.Err() == nil {
		fetches := client.PollFetches(ctx)
		now := time.Now().UnixMilli()
		var lines strings.Builder
		fetches.EachError(func(_ string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				fmt.Fprintf(&lines, "ERR %d %s\n", partition, strings.ReplaceAll(fmt.Sprintf("%T: %v", err, err), "\n", " "))
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if seq, err := strconv.ParseInt(string(r.Value), 10, 64); err == nil {
				fmt.Fprintf(&lines, "RECV %d %d %d %d\n", seq, r.Partition, r.Offset, now)
			}
		})
		_, _ = os.Stdout.WriteString(lines.String())
	}
}
