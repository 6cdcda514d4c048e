package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// scPublish publishes ev as a node does, and returns its stream sequence.
func scPublish(t *testing.T, js jetstream.JetStream, ev delivery.Event) uint64 {
	t.Helper()
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(t.Context(), EventSubject(ev.Account, ev.Kind), body, jetstream.WithMsgID(ev.ID))
	if err != nil {
		t.Fatalf("publish %s: %v", ev.ID, err)
	}
	return ack.Sequence
}

// scRun runs c until the test ends; stop ends it early and returns Run's
// error.
func scRun(t *testing.T, c *SinkConsumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				err = errors.New("Run did not return within 20 s of its ctx ending")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// scLogger returns a logger writing to the test's output.
func scLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// scWait waits until cond holds, failing the test if it does not within
// timeout.
func scWait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // a polling interval, not a wait for an outcome
	}
}

// scSettled waits until the durable consumer name has every event of the
// stream acknowledged, and returns its info.
func scSettled(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	scWait(t, 15*time.Second, "consumer "+name+" to acknowledge everything", func() bool {
		c, err := js.Consumer(t.Context(), StreamEvents, name)
		if err != nil {
			return false
		}
		info = c.CachedInfo()
		return info.NumPending == 0 && info.NumAckPending == 0
	})
	return info
}

// scDeadCount returns the number of messages on IMAPKIT_DEAD.
func scDeadCount(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// scHook is a webhook receiver recording each request by event ID.
type scHook struct {
	srv *httptest.Server
	// answer returns the status for the try-th request (1 for the
	// first) of event id; nil answers 200.
	answer func(r *http.Request, id string, try int) int

	mu    sync.Mutex
	tries map[string][]time.Time // requests per event ID
	ok    map[string]int         // 2xx answers per event ID
	kinds map[string]int         // requests per event kind
}

func newSCHook(t *testing.T, answer func(r *http.Request, id string, try int) int) *scHook {
	h := &scHook{answer: answer, tries: map[string][]time.Time{}, ok: map[string]int{}, kinds: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev delivery.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		id := r.Header.Get("X-Imapkit-Event-Id")
		if id != ev.ID {
			t.Errorf("X-Imapkit-Event-Id %q, body id %q", id, ev.ID)
		}
		h.mu.Lock()
		h.tries[id] = append(h.tries[id], time.Now())
		h.kinds[ev.Kind]++
		try := len(h.tries[id])
		h.mu.Unlock()
		status := http.StatusOK
		if h.answer != nil {
			status = h.answer(r, id, try)
		}
		if status/100 == 2 {
			h.mu.Lock()
			h.ok[id]++
			h.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *scHook) sink() *delivery.WebhookSink { return &delivery.WebhookSink{URL: h.srv.URL} }

// delivered returns how many events the receiver answered 2xx for.
func (h *scHook) delivered() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.ok)
}

func (h *scHook) okCount(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ok[id]
}

func (h *scHook) triesOf(id string) []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.tries[id])
}

// scCountingSink counts the events its Sink took: which node delivered.
type scCountingSink struct {
	delivery.Sink
	n atomic.Int64
}

func (s *scCountingSink) Deliver(ctx context.Context, batch []delivery.Event) error {
	err := s.Sink.Deliver(ctx, batch)
	if err == nil {
		s.n.Add(int64(len(batch)))
	}
	return err
}

// A webhook failing for a while gets every event in the end, once each,
// after retries spaced by the backoff; nothing is dead-lettered.
func TestSinkConsumerRetriesUntilSuccess(t *testing.T) {
	_, js := scServer(t)
	hook := newSCHook(t, func(_ *http.Request, _ string, try int) int {
		if try <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	const backoff = 60 * time.Millisecond
	c := NewSinkConsumer(js, SinkConsumerOptions{
		Name: "webhook-1", Sink: hook.sink(), Concurrency: 4, Logger: scLogger(t),
		Retry: delivery.Retry{Retries: 5, Backoff: backoff, MaxBackoff: time.Second, Timeout: 5 * time.Second},
	})
	scRun(t, c)
	var events []delivery.Event
	for i := range 12 {
		ev := scEvent([]string{"work", "home"}[i%2], []string{"INBOX", "Lists", "Sent"}[i%3], "new", uint32(100+i))
		events = append(events, ev)
		scPublish(t, js, ev)
	}
	scWait(t, 15*time.Second, "every event delivered", func() bool { return hook.delivered() == len(events) })
	info := scSettled(t, js, "webhook-1")
	for _, ev := range events {
		if n := hook.okCount(ev.ID); n != 1 {
			t.Errorf("event %s delivered %d times, want 1", ev.ID, n)
		}
		tries := hook.triesOf(ev.ID)
		if len(tries) != 3 {
			t.Errorf("event %s: %d requests, want 3 (two 500s, then 204)", ev.ID, len(tries))
			continue
		}
		// The first retry comes after Backoff ±25%, the second after
		// twice that: handed back with a delay, not at once.
		for i, min := range []time.Duration{backoff * 3 / 4, 2 * backoff * 3 / 4} {
			if gap := tries[i+1].Sub(tries[i]); gap < min {
				t.Errorf("event %s: retry %d came %v after the try before, want at least %v", ev.ID, i+1, gap, min)
			}
		}
	}
	if info.Delivered.Stream != uint64(len(events)) || info.AckFloor.Stream != uint64(len(events)) {
		t.Errorf("consumer delivered up to %d, acknowledged up to %d; want %d", info.Delivered.Stream, info.AckFloor.Stream, len(events))
	}
	if n := scDeadCount(t, js); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

// A webhook that never succeeds: each event is tried Retries+1 times and
// then is on IMAPKIT_DEAD, as a DeadRecord; List shows them; Replay puts
// one back, which the recovered webhook gets, and which another sink that
// had it already does not get again.
func TestSinkConsumerDeadLettersAndReplay(t *testing.T) {
	_, js := scServer(t)
	var down atomic.Bool
	down.Store(true)
	hook := newSCHook(t, func(_ *http.Request, _ string, _ int) int {
		if down.Load() {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	other := newSCHook(t, nil)
	sink := hook.sink()
	retry := delivery.Retry{Retries: 2, Backoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Timeout: 5 * time.Second}
	scRun(t, NewSinkConsumer(js, SinkConsumerOptions{Name: "webhook-dead", Sink: sink, Retry: retry, Logger: scLogger(t)}))
	scRun(t, NewSinkConsumer(js, SinkConsumerOptions{Name: "webhook-other", Sink: other.sink(), Retry: retry, Logger: scLogger(t)}))

	events := []delivery.Event{scEvent("work", "INBOX", "new", 1), scEvent("work", "INBOX", "flags", 1), scEvent("home", "Lists", "new", 9)}
	seqs := map[string]uint64{}
	for _, ev := range events {
		seqs[ev.ID] = scPublish(t, js, ev)
	}
	dl := NewDeadLetters(js)
	var letters []StoredDeadLetter
	scWait(t, 15*time.Second, "three dead letters", func() bool {
		var err error
		letters, err = dl.Letters(t.Context(), 10)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		return len(letters) == len(events)
	})
	scSettled(t, js, "webhook-dead")
	deadStream, err := js.Stream(t.Context(), StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range letters {
		if i > 0 && l.Seq <= letters[i-1].Seq {
			t.Errorf("List not oldest first: %d after %d", l.Seq, letters[i-1].Seq)
		}
		ev := l.Record.Event
		i := slices.IndexFunc(events, func(e delivery.Event) bool { return e.ID == ev.ID })
		if i < 0 {
			t.Errorf("dead letter %d of unknown event %+v", l.Seq, ev)
			continue
		}
		want := events[i]
		if !slices.Equal(ev.Flags, want.Flags) || ev.Subject != want.Subject || ev.MessageID != want.MessageID || ev.UID != want.UID || ev.Mailbox != want.Mailbox {
			t.Errorf("dead letter %d: event %+v, want %+v", l.Seq, ev, want)
		}
		if l.Sink != "webhook-dead" || l.Record.Sink != sink.String() || l.Record.Attempts != retry.Retries+1 ||
			!strings.Contains(l.Record.Err, "500") || l.StreamSeq != seqs[ev.ID] || l.Malformed {
			t.Errorf("dead letter %d: %+v; want sink webhook-dead, record sink %q, 3 attempts, a 500 error, stream seq %d", l.Seq, l, sink.String(), seqs[ev.ID])
		}
		if n := len(hook.triesOf(ev.ID)); n != retry.Retries+1 {
			t.Errorf("event %s: %d requests, want %d", ev.ID, n, retry.Retries+1)
		}
		// The body is exactly the dead-letter file's line.
		m, err := deadStream.GetMsg(t.Context(), l.Seq)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := delivery.DeadRecord{Event: want, Sink: sink.String(), Err: l.Record.Err, Attempts: 3, Time: l.Record.Time}.MarshalJSON()
		if string(m.Data) != string(line) {
			t.Errorf("dead letter %d body\n%s\nwant\n%s", l.Seq, m.Data, line)
		}
		if m.Subject != DeadSubject(want.Account, want.Kind) || m.Header.Get(HeaderSink) != "webhook-dead" ||
			m.Header.Get(HeaderStreamSeq) != strconv.FormatUint(seqs[ev.ID], 10) {
			t.Errorf("dead letter %d: subject %s, headers %v", l.Seq, m.Subject, m.Header)
		}
	}
	if last, _ := dl.Letters(t.Context(), 1); len(last) != 1 || last[0].Seq != letters[2].Seq {
		t.Errorf("List(1) = %+v, want the newest letter, %d", last, letters[2].Seq)
	}
	scSettled(t, js, "webhook-other")
	for _, ev := range events {
		if n := other.okCount(ev.ID); n != 1 {
			t.Fatalf("other sink got %s %d times, want 1", ev.ID, n)
		}
	}

	down.Store(false)
	replayed := letters[0]
	id := replayed.Record.Event.ID
	if err := dl.Replay(t.Context(), replayed.Seq); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	scWait(t, 10*time.Second, "the replayed event delivered", func() bool { return hook.okCount(id) == 1 })
	scSettled(t, js, "webhook-dead")
	scSettled(t, js, "webhook-other")
	if n := other.okCount(id); n != 1 {
		t.Errorf("other sink got the replayed event: %d deliveries, want 1", n)
	}
	if err := dl.Replay(t.Context(), replayed.Seq); !errors.Is(err, ErrNoDeadLetter) {
		t.Errorf("second Replay: %v, want ErrNoDeadLetter", err)
	}
	left, err := dl.Letters(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].Seq != letters[1].Seq || left[1].Seq != letters[2].Seq {
		t.Errorf("after Replay, List = %+v, want letters %d and %d", left, letters[1].Seq, letters[2].Seq)
	}
	evs, err := js.Stream(t.Context(), StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := evs.GetMsg(t.Context(), evs.CachedInfo().State.LastSeq)
	if err != nil {
		t.Fatal(err)
	}
	wantID := id + ":replay:" + strconv.FormatUint(replayed.Seq, 10)
	if m.Header.Get(nats.MsgIdHdr) != wantID || m.Header.Get(HeaderReplayOf) != id || m.Header.Get(HeaderReplayFor) != "webhook-dead" {
		t.Errorf("replayed message headers %v, want Nats-Msg-Id %s, %s %s, %s webhook-dead", m.Header, wantID, HeaderReplayOf, id, HeaderReplayFor)
	}
}

// A hook hanging past Retry.Timeout is killed, and the event retried at
// once, not after AckWait.
func TestSinkConsumerExecTimeout(t *testing.T) {
	_, js := scServer(t)
	dir := t.TempDir()
	hook := &delivery.ExecSink{
		Command: `f="$DIR/$IMAPKIT_EVENT_ID"
if [ ! -e "$f.first" ]; then echo $$ > "$f.first"; exec sleep 30; fi
echo "$IMAPKIT_EVENT_ID" >> "$DIR/done"`,
		Env: append(os.Environ(), "DIR="+dir),
	}
	c := NewSinkConsumer(js, SinkConsumerOptions{
		Name: "hook", Sink: hook, AckWait: 20 * time.Second, Logger: scLogger(t),
		Retry: delivery.Retry{Retries: 3, Backoff: 20 * time.Millisecond, Timeout: 400 * time.Millisecond},
	})
	scRun(t, c)
	ev := scEvent("work", "INBOX", "new", 5)
	start := time.Now()
	scPublish(t, js, ev)
	done := filepath.Join(dir, "done")
	scWait(t, 10*time.Second, "the hook to succeed", func() bool {
		b, _ := os.ReadFile(done)
		return len(b) > 0
	})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("retried after %v: the hung try was not cut short by Retry.Timeout", took)
	}
	scSettled(t, js, "hook")
	if b, _ := os.ReadFile(done); string(b) != ev.ID+"\n" {
		t.Errorf("done file %q, want one line %q", b, ev.ID)
	}
	b, err := os.ReadFile(filepath.Join(dir, ev.ID+".first"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the hung hook (pid %d) is still there: kill -0: %v", pid, err)
	}
	if n := scDeadCount(t, js); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

// A sink for "new" never sees "flags": they are filtered by subject.
func TestSinkConsumerKinds(t *testing.T) {
	_, js := scServer(t)
	hook := newSCHook(t, nil)
	scRun(t, NewSinkConsumer(js, SinkConsumerOptions{
		Name: "new-only", Sink: hook.sink(), Kinds: map[string]bool{"new": true, "flags": false}, Logger: scLogger(t),
	}))
	news := 0
	for i := range 10 {
		kind := "flags"
		if i%2 == 0 || i == 9 {
			kind = "new"
			news++
		}
		scPublish(t, js, scEvent("work", "INBOX", kind, uint32(i+1)))
	}
	scWait(t, 10*time.Second, "every new event", func() bool { return hook.delivered() == news })
	info := scSettled(t, js, "new-only")
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.kinds["flags"] != 0 || hook.kinds["new"] != news {
		t.Errorf("webhook got %v, want %d new and no flags", hook.kinds, news)
	}
	if want := []string{"imapkit.events.*.new"}; !slices.Equal(info.Config.FilterSubjects, want) {
		t.Errorf("FilterSubjects %q, want %q", info.Config.FilterSubjects, want)
	}
}

// A body that is not an event is dead-lettered at once and does not hold
// back the events behind it; its letter cannot be replayed.
func TestSinkConsumerMalformedBody(t *testing.T) {
	_, js := scServer(t)
	hook := newSCHook(t, nil)
	scRun(t, NewSinkConsumer(js, SinkConsumerOptions{Name: "webhook-1", Sink: hook.sink(), Logger: scLogger(t)}))
	if _, err := js.Publish(t.Context(), EventSubject("work", "new"), []byte("not json"), jetstream.WithMsgID("bad-1")); err != nil {
		t.Fatal(err)
	}
	ev := scEvent("work", "INBOX", "new", 2)
	scPublish(t, js, ev)
	scWait(t, 10*time.Second, "the event after the bad one", func() bool { return hook.okCount(ev.ID) == 1 })
	scSettled(t, js, "webhook-1")
	letters, err := NewDeadLetters(js).Letters(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	l := letters[0]
	if !l.Malformed || l.Record.Attempts != 1 || l.Record.Event.ID != "bad-1" || l.Record.Event.Account != "work" ||
		l.Record.Event.Kind != "new" || !strings.Contains(l.Record.Err, "not an event") || l.StreamSeq != 1 {
		t.Errorf("dead letter %+v; want a malformed letter of bad-1, work, new, 1 attempt, stream seq 1", l)
	}
	if err := NewDeadLetters(js).Replay(t.Context(), l.Seq); err == nil || !strings.Contains(err.Error(), "not an event") {
		t.Errorf("Replay of a malformed letter: %v, want a refusal", err)
	}
}

// Two nodes on one durable share the events, each delivered once; when one
// stops, the other finishes everything.
func TestSinkConsumerSharedDurable(t *testing.T) {
	url, js := scServer(t)
	var delay atomic.Int64
	delay.Store(int64(10 * time.Millisecond))
	hook := newSCHook(t, func(r *http.Request, _ string, _ int) int {
		select {
		case <-time.After(time.Duration(delay.Load())): // a webhook taking its time
			return http.StatusOK
		case <-r.Context().Done():
			return http.StatusServiceUnavailable // the node gave up: not delivered
		}
	})
	_, jsA := natstest.Connect(t, url)
	_, jsB := natstest.Connect(t, url)
	sinkA, sinkB := &scCountingSink{Sink: hook.sink()}, &scCountingSink{Sink: hook.sink()}
	opts := func(s delivery.Sink) SinkConsumerOptions {
		return SinkConsumerOptions{Name: "webhook-shared", Sink: s, Concurrency: 4, AckWait: 2 * time.Second, Logger: scLogger(t)}
	}
	stopA := scRun(t, NewSinkConsumer(jsA, opts(sinkA)))
	scRun(t, NewSinkConsumer(jsB, opts(sinkB)))

	var events []delivery.Event
	for i := range 40 {
		ev := scEvent(fmt.Sprintf("acct%d", i%5), "INBOX", "new", uint32(i+1))
		events = append(events, ev)
		scPublish(t, js, ev)
	}
	scWait(t, 15*time.Second, "40 events delivered", func() bool { return hook.delivered() == 40 })
	scSettled(t, js, "webhook-shared")
	for _, ev := range events {
		if n := hook.okCount(ev.ID); n != 1 {
			t.Errorf("event %s delivered %d times with both nodes up, want 1", ev.ID, n)
		}
	}
	if a, b := sinkA.n.Load(), sinkB.n.Load(); a == 0 || b == 0 || a+b != 40 {
		t.Errorf("node A delivered %d, node B %d: want both some, 40 in all", a, b)
	}

	// Stop A amid a second round.
	delay.Store(int64(40 * time.Millisecond))
	aBefore := sinkA.n.Load()
	var more []delivery.Event
	for i := range 40 {
		ev := scEvent(fmt.Sprintf("acct%d", i%5), "INBOX", "new", uint32(1000+i))
		more = append(more, ev)
		scPublish(t, js, ev)
	}
	scWait(t, 10*time.Second, "node A to deliver some of the second round", func() bool { return sinkA.n.Load() >= aBefore+3 })
	if err := stopA(); err != nil {
		t.Fatalf("Run of node A: %v", err)
	}
	aAfter := sinkA.n.Load()
	scWait(t, 20*time.Second, "node B to deliver the rest", func() bool { return hook.delivered() == 80 })
	scSettled(t, js, "webhook-shared")
	dups := 0
	for _, ev := range more {
		dups += hook.okCount(ev.ID) - 1
	}
	// An event whose request A had sent when it stopped may reach the
	// receiver twice: at most one per worker of A.
	if dups > 4 {
		t.Errorf("%d events delivered twice, want at most 4 (the ones under way at A when it stopped)", dups)
	}
	if n := sinkA.n.Load(); n != aAfter {
		t.Errorf("node A delivered %d events after Run returned", n-aAfter)
	}
}

// A node that dies amid a delivery (no ack, no nak) leaves the event to
// another node after AckWait; while it lives, it keeps the event however
// long the try, even past AckWait.
func TestSinkConsumerRedeliveryAfterCrash(t *testing.T) {
	url, js := scServer(t)
	release := make(chan struct{})
	defer close(release)
	hook := newSCHook(t, func(r *http.Request, _ string, try int) int {
		if try == 1 {
			select { // the first try hangs
			case <-release:
			case <-r.Context().Done():
			}
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	ncA, jsA := natstest.Connect(t, url)
	_, jsB := natstest.Connect(t, url)
	const ackWait = time.Second
	opts := SinkConsumerOptions{
		Name: "webhook-crash", Sink: hook.sink(), Concurrency: 1, AckWait: ackWait, Logger: scLogger(t),
		Retry: delivery.Retry{Timeout: 30 * time.Second},
	}
	a := NewSinkConsumer(jsA, opts)
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctxA) }()
	<-a.ready
	ev := scEvent("work", "INBOX", "new", 1)
	scPublish(t, js, ev)
	scWait(t, 10*time.Second, "node A's try", func() bool { return len(hook.triesOf(ev.ID)) == 1 })
	b := NewSinkConsumer(jsB, opts)
	scRun(t, b)
	<-b.ready

	// A keeps the event while it works on it: nothing for B within
	// 2.5 AckWait.
	time.Sleep(ackWait * 5 / 2)
	if n := len(hook.triesOf(ev.ID)); n != 1 {
		t.Fatalf("%d tries while node A was at work on the first, want 1", n)
	}

	ncA.Close() // A dies: no ack, no nak, no more in-progress notices
	died := time.Now()
	scWait(t, 10*time.Second, "node B's try", func() bool { return hook.okCount(ev.ID) == 1 })
	tries := hook.triesOf(ev.ID)
	if len(tries) != 2 {
		t.Fatalf("%d tries, want 2", len(tries))
	}
	// The last notice came at most AckWait/3 before A died.
	if after := tries[1].Sub(died); after < ackWait*2/3 {
		t.Errorf("redelivered %v after node A died, before AckWait (%v) could pass", after, ackWait)
	}
	scSettled(t, js, "webhook-crash")
	// A's try ends; A finds its connection closed, and its Run returns.
	release <- struct{}{}
	select {
	case err := <-doneA:
		if !connClosed(err) {
			t.Errorf("Run of node A after its connection closed: %v, want a closed-connection error", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Run of node A did not return within 10 s of its connection closing")
		cancelA()
		<-doneA
	}
}

// Three nodes of a cluster creating the same durable at once all succeed,
// and share its events.
func TestSinkConsumerConcurrentCreate(t *testing.T) {
	servers := natstest.Cluster(t, 3)
	_, js0 := natstest.Connect(t, servers[0].ClientURL())
	scStreams(t, js0, 3)
	hook := newSCHook(t, nil)
	var consumers []*SinkConsumer
	for _, s := range servers {
		_, js := natstest.Connect(t, s.ClientURL())
		consumers = append(consumers, NewSinkConsumer(js, SinkConsumerOptions{Name: "webhook-cluster", Sink: hook.sink(), Logger: scLogger(t)}))
	}
	start := make(chan struct{})
	for _, c := range consumers {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			<-start // all at once
			done <- c.Run(ctx)
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	close(start)
	for i, c := range consumers {
		select {
		case <-c.ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d did not create the durable within 30 s", i)
		}
	}
	var events []delivery.Event
	for i := range 9 {
		ev := scEvent("work", fmt.Sprintf("box%d", i), "new", uint32(i+1))
		events = append(events, ev)
		scPublish(t, js0, ev)
	}
	scWait(t, 15*time.Second, "9 events delivered", func() bool { return hook.delivered() == 9 })
	info := scSettled(t, js0, "webhook-cluster")
	for _, ev := range events {
		if n := hook.okCount(ev.ID); n != 1 {
			t.Errorf("event %s delivered %d times, want 1", ev.ID, n)
		}
	}
	if info.Config.Replicas != 3 && info.Config.Replicas != 0 {
		t.Errorf("consumer replicas %d, want the stream's 3", info.Config.Replicas)
	}
}

// A node started before the stream exists (EnsureInfra still at work)
// keeps trying to create its consumer, and delivers once it can.
func TestSinkConsumerWaitsForStream(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	hook := newSCHook(t, nil)
	var log scLog
	c := NewSinkConsumer(js, SinkConsumerOptions{
		Name: "early", Sink: hook.sink(),
		Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	scRun(t, c)
	scWait(t, 10*time.Second, "a failed creation", func() bool {
		return strings.Contains(log.String(), "cannot create the durable consumer")
	})
	scStreams(t, js, 1)
	select {
	case <-c.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("no consumer 10 s after the stream was created; log:\n%s", log.String())
	}
	ev := scEvent("work", "INBOX", "new", 1)
	scPublish(t, js, ev)
	scWait(t, 10*time.Second, "the event delivered", func() bool { return hook.okCount(ev.ID) == 1 })
}

// scLog is a log destination safe for concurrent use.
type scLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *scLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *scLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The consumer's configuration follows the options.
func TestSinkConsumerConfig(t *testing.T) {
	c := NewSinkConsumer(nil, SinkConsumerOptions{
		Name: "webhook-1", Sink: &delivery.WebhookSink{URL: "https://user:pw@example.org/hook?k=secret"},
		Kinds: map[string]bool{"new": true, "flags": true, "expunge": false}, AckWait: 5 * time.Second,
	})
	cfg := c.consumerConfig()
	if cfg.Durable != "webhook-1" || cfg.AckPolicy != jetstream.AckExplicitPolicy || cfg.AckWait != 5*time.Second ||
		cfg.MaxDeliver != -1 || cfg.BackOff != nil || cfg.MaxAckPending != sinkMaxAckPending ||
		cfg.DeliverPolicy != jetstream.DeliverAllPolicy {
		t.Errorf("config %+v", cfg)
	}
	if want := []string{"imapkit.events.*.flags", "imapkit.events.*.new"}; !slices.Equal(cfg.FilterSubjects, want) {
		t.Errorf("FilterSubjects %q, want %q", cfg.FilterSubjects, want)
	}
	if strings.Contains(cfg.Description, "secret") || strings.Contains(cfg.Description, "pw") {
		t.Errorf("description %q shows a secret", cfg.Description)
	}
	if c.tries() != delivery.DefaultRetries+1 || c.concurrency != DefaultSinkConcurrency {
		t.Errorf("tries %d, concurrency %d: want the defaults", c.tries(), c.concurrency)
	}
	if all := NewSinkConsumer(nil, SinkConsumerOptions{Name: "x", Sink: c.sink}).consumerConfig(); all.FilterSubjects != nil {
		t.Errorf("no Kinds: FilterSubjects %q, want none", all.FilterSubjects)
	}
}

// Run refuses options that cannot work, saying why.
func TestSinkConsumerCheck(t *testing.T) {
	sink := &delivery.WebhookSink{URL: "http://127.0.0.1:1/"}
	for _, tc := range []struct {
		o    SinkConsumerOptions
		want string
	}{
		{SinkConsumerOptions{Name: "a.b", Sink: sink}, "name"},
		{SinkConsumerOptions{Name: "", Sink: sink}, "name"},
		{SinkConsumerOptions{Name: "ok"}, "no sink"},
		{SinkConsumerOptions{Name: "ok", Sink: sink, Kinds: map[string]bool{"new.*": true}}, "kind"},
		{SinkConsumerOptions{Name: "ok", Sink: sink, Kinds: map[string]bool{"new": false}}, "no kind"},
	} {
		err := NewSinkConsumer(nil, tc.o).Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run with %+v: %v, want an error about %s", tc.o, err, tc.want)
		}
	}
}

// Retry delays double from Backoff up to MaxBackoff, varied by ±25%.
func TestSinkConsumerBackoff(t *testing.T) {
	c := NewSinkConsumer(nil, SinkConsumerOptions{Retry: delivery.Retry{Backoff: time.Second, MaxBackoff: 10 * time.Second}})
	for _, tc := range []struct {
		n    uint64
		rnd  float64
		want time.Duration
	}{
		{1, 0.5, time.Second},
		{2, 0.5, 2 * time.Second},
		{3, 0, 3 * time.Second}, // 4 s -25%
		{4, 0.999999, 10 * time.Second},
		{40, 0.5, 10 * time.Second},
	} {
		if got := c.backoff(tc.n, tc.rnd); got.Round(time.Millisecond) != tc.want {
			t.Errorf("backoff(%d, %v) = %v, want %v", tc.n, tc.rnd, got, tc.want)
		}
	}
}

// A lane lets one event through at a time, in order of arrival, and other
// lanes meanwhile.
func TestLaneLocks(t *testing.T) {
	var l laneLocks
	ctx := t.Context()
	a := laneID{"work", "INBOX"}
	r1, ok := l.acquire(ctx, a)
	if !ok {
		t.Fatal("first acquire failed")
	}
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	tail := func() chan struct{} {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.tails[a]
	}
	for i := 2; i <= 4; i++ {
		before := tail()
		wg.Go(func() {
			r, ok := l.acquire(ctx, a)
			if !ok {
				t.Error("acquire failed")
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			r()
		})
		// Queued once it is the lane's tail: the next one comes after.
		scWait(t, 5*time.Second, "the waiter to queue", func() bool { return tail() != before })
	}
	other, ok := l.acquire(ctx, laneID{"work", "Sent"})
	if !ok {
		t.Fatal("another lane waited")
	}
	other()
	mu.Lock()
	if len(order) != 0 {
		t.Errorf("events %v went through while the lane was held", order)
	}
	mu.Unlock()

	// A waiter whose ctx ends gives up, and passes its turn on.
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan bool, 1)
	go func() {
		_, ok := l.acquire(cctx, a)
		gaveUp <- !ok
	}()
	cancel()
	if !<-gaveUp {
		t.Error("acquire with an ended ctx succeeded while the lane was held")
	}
	r1()
	wg.Wait()
	if !slices.Equal(order, []int{2, 3, 4}) {
		t.Errorf("order %v, want [2 3 4]", order)
	}
	r, ok := l.acquire(ctx, a)
	if !ok {
		t.Fatal("acquire after all")
	}
	r()
	scWait(t, 5*time.Second, "the lanes to be forgotten", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.tails) == 0
	})
}
