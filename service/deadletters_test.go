package service

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imapkit/imap/delivery"
	"github.com/imapkit/imap/internal/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The helpers of the package's tests of sinks and dead letters are
// prefixed sc, so as not to collide with those of its other tests.

// scStreams creates the streams a SinkConsumer needs, with replicas
// replicas. (EnsureInfra does it in a deployment.)
func scStreams(t *testing.T, js jetstream.JetStream, replicas int) {
	t.Helper()
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: StreamEvents, Subjects: []string{SubjectEvents + ".>"},
		Duplicates: 2 * time.Minute, Replicas: replicas,
	}); err != nil {
		t.Fatalf("create %s: %v", StreamEvents, err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: StreamDead, Subjects: []string{SubjectDead + ".>"}, Replicas: replicas,
	}); err != nil {
		t.Fatalf("create %s: %v", StreamDead, err)
	}
}

// scServer starts a server with the streams; it returns its URL and a
// JetStream context.
func scServer(t *testing.T) (string, jetstream.JetStream) {
	t.Helper()
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	scStreams(t, js, 1)
	return s.ClientURL(), js
}

// scEvent returns an event of account/mailbox of the given kind and UID.
func scEvent(account, mailbox, kind string, uid uint32) delivery.Event {
	return delivery.Event{
		ID:   fmt.Sprintf("%s-%s-%s-%d", account, mailbox, kind, uid),
		Kind: kind, Time: "2025-03-04T07:06:10Z", Account: account, Mailbox: mailbox,
		UIDValidity: 7, UID: uid, Subject: "Build <passed> & done", MessageID: "<m" + strconv.Itoa(int(uid)) + "@example.org>",
	}
}

// scBury publishes the dead letter of ev as sink gave up on it at stream
// sequence streamSeq, and returns its sequence in IMAPKIT_DEAD.
func scBury(t *testing.T, js jetstream.JetStream, ev delivery.Event, sink string, streamSeq uint64) uint64 {
	t.Helper()
	rec := delivery.DeadRecord{Event: ev, Sink: "webhook http://example.org/", Err: "server answered 500", Attempts: 6, Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := publishDeadLetter(t.Context(), js, EventSubject(ev.Account, ev.Kind), rec, sink, streamSeq, false); err != nil {
		t.Fatalf("publishDeadLetter: %v", err)
	}
	s, err := js.Stream(t.Context(), StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

// scSeqs returns the sequences of letters.
func scSeqs(letters []StoredDeadLetter) []uint64 {
	var out []uint64
	for _, l := range letters {
		out = append(out, l.Seq)
	}
	return out
}

// List returns the newest letters, oldest first, across the gaps replayed
// letters leave, and leaves out what is not a letter.
func TestDeadLettersList(t *testing.T) {
	_, js := scServer(t)
	dl := NewDeadLetters(js)
	if got, err := dl.Letters(t.Context(), 5); err != nil || len(got) != 0 {
		t.Fatalf("List of no letters = %v, %v; want none", got, err)
	}
	for i := range 10 {
		scBury(t, js, scEvent("work", "INBOX", "new", uint32(i+1)), "webhook-1", uint64(100+i))
	}
	// Not a letter: someone else's message on the subject.
	if _, err := js.Publish(t.Context(), DeadSubject("work", "new"), []byte("hello")); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{2, 3, 8, 9} {
		if err := s.DeleteMsg(t.Context(), seq); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		limit int
		want  []uint64
	}{
		{1, []uint64{10}},
		{3, []uint64{6, 7, 10}},
		{5, []uint64{4, 5, 6, 7, 10}},
		{7, []uint64{1, 4, 5, 6, 7, 10}},
		{100, []uint64{1, 4, 5, 6, 7, 10}},
		{0, []uint64{1, 4, 5, 6, 7, 10}},
	} {
		got, err := dl.Letters(t.Context(), tc.limit)
		if err != nil {
			t.Fatalf("List(%d): %v", tc.limit, err)
		}
		if gs := scSeqs(got); !slices.Equal(gs, tc.want) {
			t.Errorf("List(%d) = %v, want %v", tc.limit, gs, tc.want)
		}
	}
	got, _ := dl.Letters(t.Context(), 1)
	l := got[0]
	if l.Sink != "webhook-1" || l.StreamSeq != 109 || l.Record.Event.UID != 10 || l.Record.Attempts != 6 ||
		!l.Record.Time.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) || l.Malformed {
		t.Errorf("letter %+v", l)
	}
}

// The dead letter of one message of one sink is stored once, even if its
// publish is repeated (its acknowledgement was lost).
func TestDeadLetterPublishOnce(t *testing.T) {
	_, js := scServer(t)
	ev := scEvent("work", "INBOX", "new", 1)
	scBury(t, js, ev, "webhook-1", 7)
	scBury(t, js, ev, "webhook-1", 7)
	scBury(t, js, ev, "hook", 7) // another sink's
	letters, err := NewDeadLetters(js).List(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 2 || letters[0].Sink != "webhook-1" || letters[1].Sink != "hook" {
		t.Errorf("letters %+v, want one of webhook-1 and one of hook", letters)
	}
}

// Replay republishes the event byte for byte under a new Nats-Msg-Id, and
// deletes the letter; it refuses what is not a letter.
func TestDeadLettersReplay(t *testing.T) {
	_, js := scServer(t)
	dl := NewDeadLetters(js)
	ev := scEvent("home", "Lists", "flags", 3) // its Subject and Message-ID hold < > &
	seq := scBury(t, js, ev, "webhook-1", 41)
	dead, err := js.Stream(t.Context(), StreamDead)
	if err != nil {
		t.Fatal(err)
	}
	letter, err := dead.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.Replay(t.Context(), seq); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	events, err := js.Stream(t.Context(), StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	m, err := events.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatalf("the replayed event: %v", err)
	}
	if m.Subject != EventSubject("home", "flags") {
		t.Errorf("replayed on %s, want %s", m.Subject, EventSubject("home", "flags"))
	}
	if !strings.Contains(string(letter.Data), `"event":`+string(m.Data)+`,`) || strings.Contains(string(m.Data), `\u003c`) {
		t.Errorf("replayed body %s is not the letter's event, byte for byte: %s", m.Data, letter.Data)
	}
	if id := m.Header.Get(nats.MsgIdHdr); id != ev.ID+":replay:"+strconv.FormatUint(seq, 10) {
		t.Errorf("Nats-Msg-Id %q", id)
	}
	if m.Header.Get(HeaderReplayOf) != ev.ID || m.Header.Get(HeaderReplayFor) != "webhook-1" {
		t.Errorf("headers %v", m.Header)
	}
	if _, err := dead.GetMsg(t.Context(), seq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("the letter after Replay: %v, want it deleted", err)
	}
	if err := dl.Replay(t.Context(), seq); !errors.Is(err, ErrNoDeadLetter) {
		t.Errorf("Replay again: %v, want ErrNoDeadLetter", err)
	}
	if err := dl.Replay(t.Context(), 999); !errors.Is(err, ErrNoDeadLetter) {
		t.Errorf("Replay of no letter: %v, want ErrNoDeadLetter", err)
	}
	ack, err := js.Publish(t.Context(), DeadSubject("home", "new"), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.Replay(t.Context(), ack.Sequence); err == nil || !strings.Contains(err.Error(), "not a dead record") {
		t.Errorf("Replay of a message that is not a letter: %v", err)
	}
	if info, _ := events.Info(t.Context()); info.State.Msgs != 1 {
		t.Errorf("%d events after the refusals, want 1", info.State.Msgs)
	}
}

// Without the stream, List and Replay say which stream is missing.
func TestDeadLettersNoStream(t *testing.T) {
	s := natstest.Start(t)
	_, js := natstest.Connect(t, s.ClientURL())
	dl := NewDeadLetters(js)
	if _, err := dl.Letters(t.Context(), 10); err == nil || !strings.Contains(err.Error(), StreamDead) {
		t.Errorf("List: %v, want an error naming %s", err, StreamDead)
	}
	if err := dl.Replay(t.Context(), 1); err == nil || !strings.Contains(err.Error(), StreamDead) {
		t.Errorf("Replay: %v, want an error naming %s", err, StreamDead)
	}
}
