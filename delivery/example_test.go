package delivery_test

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/imapkit/imap/delivery"
)

// Example hands events to a JSON stream and a hook, and acknowledges each
// once both have it. With a watcher, done would call the watch.Event's Ack.
func Example() {
	d := delivery.NewDispatcher(delivery.Config{
		Routes: []delivery.Route{
			{Sink: delivery.NewJSONSink(os.Stdout)},
			{Sink: &delivery.ExecSink{Command: `test "$IMAPKIT_EVENT" = new`}, Kinds: map[string]bool{"new": true}},
		},
		DeadLetter: delivery.NewDeadLetterWriter(os.Stderr),
	})
	var handled sync.WaitGroup
	for uid := uint32(1); uid <= 2; uid++ {
		ev := delivery.Event{ID: fmt.Sprintf("id-%d", uid), Kind: "new", Time: "2026-12-06T08:00:00Z", Account: "work", Mailbox: "INBOX", UID: uid}
		handled.Add(1)
		d.Submit(ev, func() {
			fmt.Println("acknowledged", ev.ID)
			handled.Done()
		})
		handled.Wait() // one at a time, to keep this example's output in order
	}
	d.Shutdown(context.Background())
	// Output:
	// {"id":"id-1","event":"new","time":"2026-12-06T08:00:00Z","account":"work","mailbox":"INBOX","uid":1}
	// acknowledged id-1
	// {"id":"id-2","event":"new","time":"2026-12-06T08:00:00Z","account":"work","mailbox":"INBOX","uid":2}
	// acknowledged id-2
}
