package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memDeadLetter keeps dead records in memory; with fail set, Write fails.
type memDeadLetter struct {
	mu   sync.Mutex
	recs []DeadRecord
	fail bool
}

func (m *memDeadLetter) Write(rec DeadRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return fmt.Errorf("disk full")
	}
	m.recs = append(m.recs, rec)
	return nil
}

func (m *memDeadLetter) records() []DeadRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]DeadRecord(nil), m.recs...)
}

// funcSink is a Sink that calls f.
type funcSink struct {
	name string
	f    func(ctx context.Context, batch []Event) error
}

func (s *funcSink) Deliver(ctx context.Context, batch []Event) error { return s.f(ctx, batch) }
func (s *funcSink) String() string                                   { return s.name }

// doneSet records the done calls of events by ID.
type doneSet struct {
	mu    sync.Mutex
	calls map[string]int
	order []string
}

func newDoneSet() *doneSet { return &doneSet{calls: map[string]int{}} }

func (s *doneSet) fn(id string) func() {
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls[id]++
		s.order = append(s.order, id)
	}
}

func (s *doneSet) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

func (s *doneSet) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// checkNoLeak fails the test if goroutines started since before do not
// exit: every goroutine of a Dispatcher must be gone after Shutdown.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("%d goroutines, %d before the test:\n%s", runtime.NumGoroutine(), before, buf[:n])
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
}

// fast is a Retry for tests: millisecond backoffs.
var fast = Retry{Retries: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, Timeout: 5 * time.Second}

// recorder is a Sink that records what it delivers, failing the first
// failFirst tries of each event.
type recorder struct {
	name      string
	failFirst int

	mu        sync.Mutex
	tries     map[string]int
	delivered map[string][]uint32 // by account/mailbox
	batches   []int
}

func newRecorder(name string, failFirst int) *recorder {
	return &recorder{name: name, failFirst: failFirst, tries: map[string]int{}, delivered: map[string][]uint32{}}
}

func (r *recorder) String() string { return r.name }

func (r *recorder) Deliver(ctx context.Context, batch []Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range batch {
		r.tries[e.ID]++
		if r.tries[e.ID] <= r.failFirst {
			return fmt.Errorf("try %d of %s fails", r.tries[e.ID], e.ID)
		}
	}
	r.batches = append(r.batches, len(batch))
	for _, e := range batch {
		r.delivered[e.where()] = append(r.delivered[e.where()], e.UID)
	}
	return nil
}

func (r *recorder) uids(where string) []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.delivered[where])
}

func (r *recorder) batchSizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// gate is a Sink that blocks the events of one mailbox (account/mailbox)
// until opened, or until its ctx ends; other events go through.
type gate struct {
	where   string
	open    chan struct{}
	started chan Event // each blocked delivery, when it starts
	mu      sync.Mutex
	causes  []error
	passed  []string
}

func newGate(where string) *gate {
	return &gate{where: where, open: make(chan struct{}), started: make(chan Event, 100)}
}

func (g *gate) String() string { return "gate" }

func (g *gate) Deliver(ctx context.Context, batch []Event) error {
	if batch[0].where() == g.where {
		g.started <- batch[0]
		select {
		case <-g.open:
		case <-ctx.Done():
			g.mu.Lock()
			g.causes = append(g.causes, context.Cause(ctx))
			g.mu.Unlock()
			return context.Cause(ctx)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range batch {
		g.passed = append(g.passed, e.ID)
	}
	return nil
}

func (g *gate) passedIDs() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.passed)
}

func TestDispatcherOrderUnderRetries(t *testing.T) {
	checkNoLeak(t)
	before := runtime.NumGoroutine()
	rec := newRecorder("rec", 2) // each event fails twice, then goes
	dl := &memDeadLetter{}
	d := NewDispatcher(Config{Routes: []Route{{Sink: rec, Retry: fast}}, DeadLetter: dl})
	done := newDoneSet()
	boxes := []string{"INBOX", "Lists", "Sent"}
	for uid := uint32(1); uid <= 20; uid++ {
		for _, box := range boxes {
			e := ev("work", box, uid)
			d.Submit(e, done.fn(e.ID))
		}
	}
	waitFor(t, 10*time.Second, "every event done", func() bool { return done.total() == 60 })
	want := make([]uint32, 20)
	for i := range want {
		want[i] = uint32(i + 1)
	}
	for _, box := range boxes {
		if got := rec.uids("work/" + box); !slices.Equal(got, want) {
			t.Errorf("work/%s delivered in order %v, want %v", box, got, want)
		}
	}
	if recs := dl.records(); len(recs) != 0 {
		t.Errorf("%d dead records, want none", len(recs))
	}
	// Idle lanes keep no goroutine.
	waitFor(t, 3*time.Second, "lane goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for id, n := range done.calls {
		if n != 1 {
			t.Errorf("done of %s called %d times", id, n)
		}
	}
}

func TestDispatcherIndependentLanes(t *testing.T) {
	checkNoLeak(t)
	g := newGate("stuck/INBOX")
	d := NewDispatcher(Config{Routes: []Route{{Sink: g, Retry: fast}}})
	done := newDoneSet()
	stuck := ev("stuck", "INBOX", 1)
	d.Submit(stuck, done.fn(stuck.ID))
	<-g.started
	var others []string
	for uid := uint32(1); uid <= 5; uid++ {
		// Another account's mailbox of the same name, and another mailbox
		// of the same account.
		for _, e := range []Event{ev("other", "INBOX", uid), ev("stuck", "Lists", uid)} {
			others = append(others, e.ID)
			d.Submit(e, done.fn(e.ID))
		}
	}
	waitFor(t, 5*time.Second, "other lanes' events done", func() bool { return done.total() == len(others) })
	if done.count(stuck.ID) != 0 {
		t.Fatal("stuck event done before its sink returned")
	}
	close(g.open)
	waitFor(t, 5*time.Second, "stuck event done", func() bool { return done.count(stuck.ID) == 1 })
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDispatcherLaneHoldsLaterEventsOfItsMailbox(t *testing.T) {
	checkNoLeak(t)
	g := newGate("work/INBOX")
	d := NewDispatcher(Config{Routes: []Route{{Sink: g, Retry: fast}}})
	done := newDoneSet()
	first, second := ev("work", "INBOX", 1), ev("work", "INBOX", 2)
	d.Submit(first, done.fn(first.ID))
	d.Submit(second, done.fn(second.ID))
	<-g.started
	close(g.open)
	waitFor(t, 5*time.Second, "both done", func() bool { return done.total() == 2 })
	if got := done.order; !slices.Equal(got, []string{first.ID, second.ID}) {
		t.Errorf("done in order %v", got)
	}
	d.Shutdown(context.Background())
}

func TestDispatcherRoutesAreIndependent(t *testing.T) {
	checkNoLeak(t)
	g := newGate("work/INBOX") // the slow route
	rec := newRecorder("rec", 0)
	d := NewDispatcher(Config{Routes: []Route{{Sink: g, Retry: fast}, {Sink: rec, Retry: fast}}})
	done := newDoneSet()
	for uid := uint32(1); uid <= 3; uid++ {
		e := ev("work", "INBOX", uid)
		d.Submit(e, done.fn(e.ID))
	}
	<-g.started
	waitFor(t, 5*time.Second, "the other route to deliver every event", func() bool {
		return len(rec.uids("work/INBOX")) == 3
	})
	if n := done.total(); n != 0 {
		t.Fatalf("%d events done while a route still lacks them", n)
	}
	close(g.open)
	waitFor(t, 5*time.Second, "every event done", func() bool { return done.total() == 3 })
	d.Shutdown(context.Background())
	for _, id := range done.order {
		if done.count(id) != 1 {
			t.Errorf("done of %s called %d times", id, done.count(id))
		}
	}
}

func TestDispatcherKinds(t *testing.T) {
	checkNoLeak(t)
	newOnly := newRecorder("new-only", 0)
	mail := newRecorder("mail", 0)
	d := NewDispatcher(Config{Routes: []Route{
		{Sink: newOnly, Kinds: map[string]bool{"new": true}, Retry: fast},
		{Sink: mail, Kinds: map[string]bool{"new": true, "flags": true}, Retry: fast},
	}})
	done := newDoneSet()
	newEv, flagsEv, alertEv := ev("a", "INBOX", 1), ev("a", "INBOX", 2), ev("a", "INBOX", 0)
	flagsEv.Kind, alertEv.Kind, alertEv.ID = "flags", "alert", "alert"
	d.Submit(newEv, done.fn(newEv.ID))
	d.Submit(flagsEv, done.fn(flagsEv.ID))

	// done is never called by Submit itself: here it would deadlock.
	var mu sync.Mutex
	mu.Lock()
	d.Submit(alertEv, func() {
		mu.Lock()
		defer mu.Unlock()
		done.fn(alertEv.ID)()
	})
	mu.Unlock()

	waitFor(t, 5*time.Second, "every event done", func() bool { return done.total() == 3 })
	if got := newOnly.uids("a/INBOX"); !slices.Equal(got, []uint32{1}) {
		t.Errorf("new-only route got UIDs %v, want [1]", got)
	}
	if got := mail.uids("a/INBOX"); !slices.Equal(got, []uint32{1, 2}) {
		t.Errorf("mail route got UIDs %v, want [1 2]", got)
	}
	d.Shutdown(context.Background())
}

func TestDispatcherDoneOnceWithSeveralRoutes(t *testing.T) {
	checkNoLeak(t)
	dl := &memDeadLetter{}
	ok, flaky, broken := newRecorder("ok", 0), newRecorder("flaky", 1), newRecorder("broken", 1000)
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{
		{Sink: ok, Retry: fast}, {Sink: flaky, Retry: fast}, {Sink: broken, Retry: Retry{Retries: 1, Backoff: time.Millisecond}},
	}})
	done := newDoneSet()
	for i := range 30 {
		e := ev(fmt.Sprint("acct", i%3), "INBOX", uint32(i/3+1))
		d.Submit(e, done.fn(e.ID))
	}
	waitFor(t, 10*time.Second, "every event done", func() bool { return done.total() == 30 })
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(done.calls) != 30 {
		t.Errorf("done called for %d events, want 30", len(done.calls))
	}
	for id, n := range done.calls {
		if n != 1 {
			t.Errorf("done of %s called %d times", id, n)
		}
	}
	recs := dl.records()
	if len(recs) != 30 {
		t.Fatalf("%d dead records, want 30 (the broken sink's)", len(recs))
	}
	for _, r := range recs {
		if r.Sink != "broken" || r.Attempts != 2 || !strings.Contains(r.Err, "try 2 of "+r.Event.ID+" fails") {
			t.Errorf("dead record %+v", r)
		}
	}
}

func TestDispatcherDeadLetter(t *testing.T) {
	tests := []struct {
		name     string
		dl       DeadLetter
		wantDone int
		wantLog  string
	}{
		{"written", &memDeadLetter{}, 1, "put in the dead letter"},
		{"write fails", &memDeadLetter{fail: true}, 0, "disk full"},
		{"none configured", nil, 0, "no dead letter configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			var logBuf syncBuffer
			sink := &funcSink{name: "picky", f: func(_ context.Context, batch []Event) error {
				if batch[0].UID == 1 {
					return errors.New("no thanks")
				}
				return nil
			}}
			d := NewDispatcher(Config{
				Routes:     []Route{{Sink: sink, Retry: Retry{Retries: 2, Backoff: time.Millisecond}}},
				DeadLetter: tt.dl,
				Log:        slog.New(slog.NewTextHandler(&logBuf, nil)),
			})
			done := newDoneSet()
			bad, good := ev("work", "INBOX", 1), ev("work", "INBOX", 2)
			d.Submit(bad, done.fn(bad.ID))
			d.Submit(good, done.fn(good.ID))
			// The lane goes on past the bad event either way.
			waitFor(t, 5*time.Second, "the later event done", func() bool { return done.count(good.ID) == 1 })
			if err := d.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := done.count(bad.ID); got != tt.wantDone {
				t.Errorf("done of the dead event called %d times, want %d", got, tt.wantDone)
			}
			log := logBuf.String()
			for _, want := range []string{tt.wantLog, "account=work", "mailbox=INBOX", "uid=1", "kind=new", "sink=picky", "attempts=3", "no thanks"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
			if m, ok := tt.dl.(*memDeadLetter); ok && !m.fail {
				recs := m.records()
				if len(recs) != 1 || recs[0].Event.ID != bad.ID || recs[0].Attempts != 3 || recs[0].Err != "no thanks" || recs[0].Sink != "picky" {
					t.Errorf("dead records %+v", recs)
				}
			}
		})
	}
}

func TestDispatcherBurst(t *testing.T) {
	checkNoLeak(t)
	rec := newRecorder("rec", 0)
	d := NewDispatcher(Config{Routes: []Route{{Sink: rec, Retry: fast, Burst: 300 * time.Millisecond}}})
	done := newDoneSet()
	for uid := uint32(1); uid <= 1500; uid++ {
		e := ev("work", "INBOX", uid)
		d.Submit(e, done.fn(e.ID))
	}
	other := ev("work", "Lists", 1)
	d.Submit(other, done.fn(other.ID))
	waitFor(t, 10*time.Second, "every event done", func() bool { return done.total() == 1501 })
	sizes := rec.batchSizes()
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{1, 500, 1000}) {
		t.Errorf("batch sizes %v, want 1 (Lists), 1000 and 500 (INBOX, capped)", sizes)
	}
	got := rec.uids("work/INBOX")
	if len(got) != 1500 || !slices.IsSorted(got) {
		t.Errorf("INBOX delivered %d events, sorted %v", len(got), slices.IsSorted(got))
	}
	d.Shutdown(context.Background())
}

func TestDispatcherShutdownAbandonsBackoff(t *testing.T) {
	checkNoLeak(t)
	tries := make(chan struct{}, 10)
	sink := &funcSink{name: "down", f: func(context.Context, []Event) error {
		tries <- struct{}{}
		return errors.New("down")
	}}
	dl := &memDeadLetter{}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: sink, Retry: Retry{Backoff: time.Hour}}}})
	done := newDoneSet()
	e := ev("work", "INBOX", 1)
	d.Submit(e, done.fn(e.ID))
	<-tries
	start := time.Now()
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("Shutdown took %v while a retry waited in backoff", el)
	}
	if done.total() != 0 || len(dl.records()) != 0 {
		t.Errorf("abandoned event: %d done, %d dead records; want none", done.total(), len(dl.records()))
	}
}

func TestDispatcherShutdownWaitsForRunningDelivery(t *testing.T) {
	checkNoLeak(t)
	g := newGate("work/INBOX")
	d := NewDispatcher(Config{Routes: []Route{{Sink: g, Retry: fast}}})
	done := newDoneSet()
	running, queued := ev("work", "INBOX", 1), ev("work", "INBOX", 2)
	d.Submit(running, done.fn(running.ID))
	d.Submit(queued, done.fn(queued.ID))
	<-g.started
	result := make(chan error, 1)
	go func() { result <- d.Shutdown(context.Background()) }()
	waitFor(t, 5*time.Second, "Shutdown to begin", d.isStopping)
	late := ev("work", "INBOX", 3)
	d.Submit(late, done.fn(late.ID)) // dropped
	select {
	case err := <-result:
		t.Fatalf("Shutdown returned %v while a delivery ran", err)
	default:
	}
	close(g.open)
	if err := <-result; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if done.count(running.ID) != 1 {
		t.Error("the delivery that finished during Shutdown was not done")
	}
	if done.count(queued.ID) != 0 || done.count(late.ID) != 0 {
		t.Error("queued or late event done after Shutdown began")
	}
	if got := g.passedIDs(); !slices.Equal(got, []string{running.ID}) {
		t.Errorf("sink got %v after Shutdown began, want only the running one", got)
	}
}

func TestDispatcherShutdownCancels(t *testing.T) {
	checkNoLeak(t)
	g := newGate("work/INBOX")
	dl := &memDeadLetter{}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: g, Retry: fast}}})
	done := newDoneSet()
	e := ev("work", "INBOX", 1)
	d.Submit(e, done.fn(e.ID))
	<-g.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
	}
	g.mu.Lock()
	causes := g.causes
	g.mu.Unlock()
	if len(causes) != 1 || !errors.Is(causes[0], errShutdown) {
		t.Errorf("delivery's ctx ended with %v, want errShutdown", causes)
	}
	if done.total() != 0 || len(dl.records()) != 0 {
		t.Errorf("cancelled event: %d done, %d dead records; want none", done.total(), len(dl.records()))
	}
}

func TestDispatcherTimeout(t *testing.T) {
	checkNoLeak(t)
	g := newGate("work/INBOX") // never opened: every try times out
	dl := &memDeadLetter{}
	d := NewDispatcher(Config{DeadLetter: dl, Routes: []Route{{Sink: g, Retry: Retry{Retries: 1, Backoff: time.Millisecond, Timeout: 20 * time.Millisecond}}}})
	done := newDoneSet()
	e := ev("work", "INBOX", 1)
	d.Submit(e, done.fn(e.ID))
	waitFor(t, 5*time.Second, "the event done", func() bool { return done.count(e.ID) == 1 })
	d.Shutdown(context.Background())
	recs := dl.records()
	if len(recs) != 1 || recs[0].Attempts != 2 || recs[0].Err != "try timed out after 20ms" {
		t.Errorf("dead records %+v", recs)
	}
}

func TestNewDispatcherNilSinkPanics(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "route 1 has no sink") {
			t.Errorf("panic %v", r)
		}
	}()
	NewDispatcher(Config{Routes: []Route{{Sink: newRecorder("r", 0)}, {}}})
}
