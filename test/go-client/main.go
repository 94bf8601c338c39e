// Command go-client posts usage the way Weave's Go billing-client (github.com/weaveworks/billing-client)
// does: through fluent-logger-golang with MarshalAsJSON, tag "billing", one record per non-zero
// amount type. Tally's forward tests run it against Tally's forward listener.
//
// Events come as a JSON array on stdin, each {uniqueKey, internalInstanceId, occurredAt (RFC 3339),
// amounts, metadata}, and are posted in order; Close() then flushes, as the billing client's does.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// Event mirrors billing.Event.
type Event struct {
	UniqueKey          string            `json:"uniqueKey"`
	InternalInstanceID string            `json:"internalInstanceId"`
	OccurredAt         time.Time         `json:"occurredAt"`
	Amounts            map[string]int64  `json:"amounts"`
	Metadata           map[string]string `json:"metadata"`
}

// toRecords is billing.Event.toRecords: msgpack (and therefore fluentd) wants maps, one per amount type.
func (e Event) toRecords() []map[string]interface{} {
	var records []map[string]interface{}
	for t, v := range e.Amounts {
		if v != 0 {
			records = append(records, map[string]interface{}{
				"unique_key":           e.UniqueKey + ":" + t,
				"internal_instance_id": e.InternalInstanceID,
				"amount_type":          t,
				"amount_value":         v,
				"occurred_at":          e.OccurredAt,
				"metadata":             e.Metadata,
			})
		}
	}
	return records
}

func main() {
	ingester := flag.String("billing.ingester", "localhost:24225", "points to the billing ingester (the billing client's flag)")
	requestAck := flag.Bool("request-ack", false, "not what the billing client does: post synchronously and wait for each record's ack, failing when one does not come")
	flag.Parse()

	host, port, err := net.SplitHostPort(*ingester)
	if err != nil {
		fail(err)
	}
	intPort, err := strconv.Atoi(port)
	if err != nil {
		fail(err)
	}
	var events []Event
	if err := json.NewDecoder(os.Stdin).Decode(&events); err != nil {
		fail(fmt.Errorf("reading events from stdin: %w", err))
	}

	// billing.NewClient's config, except MaxRetry: it passes -1, which meant "retry forever" in the
	// fluent-logger-golang of 2017 but means "never try" since v1.4 (write loops MaxRetry times),
	// so with the v1.5.0 its go.mod pins nothing is ever sent. The default (13) is used instead.
	config := fluent.Config{
		FluentPort:    intPort,
		FluentHost:    host,
		AsyncConnect:  true,
		MarshalAsJSON: true,
	}
	if *requestAck {
		// Synchronous, so that a missing or unreadable ack fails Post (after two tries) and the exit code.
		config.AsyncConnect = false
		config.RequestAck = true
		config.MaxRetry = 2
	}
	logger, err := fluent.New(config)
	if err != nil {
		fail(err)
	}
	posted := 0
	for _, e := range events {
		for _, r := range e.toRecords() {
			if err := logger.Post("billing", r); err != nil {
				fail(fmt.Errorf("posting %v: %w", r["unique_key"], err))
			}
			posted++
		}
	}
	if err := logger.Close(); err != nil {
		fail(err)
	}
	fmt.Printf("posted %d records\n", posted)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "go-client:", err)
	os.Exit(1)
}
