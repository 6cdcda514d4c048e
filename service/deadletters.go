package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/imapkit/imap/delivery"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of dead letters and of replayed events.
const (
	// HeaderSink names, on a dead letter, the SinkConsumer (its durable
	// name) that gave up on the event.
	HeaderSink = "Imapkit-Sink"
	// HeaderStreamSeq is, on a dead letter, the event's sequence in
	// IMAPKIT_EVENTS.
	HeaderStreamSeq = "Imapkit-Stream-Seq"
	// HeaderMalformed is "true" on the dead letter of a message whose
	// body was not an event; such a letter cannot be replayed.
	HeaderMalformed = "Imapkit-Malformed"
	// HeaderReplayOf is, on an event put back by DeadLetterStore.Replay, the
	// event's ID.
	HeaderReplayOf = "Imapkit-Replay-Of"
	// HeaderReplayFor is, on an event put back by DeadLetterStore.Replay, the
	// durable name of the sink it is meant for: SinkConsumers of other
	// names acknowledge it without delivering it.
	HeaderReplayFor = "Imapkit-Replay-For"
)

// StoredDeadLetter is an event a sink gave up on, as kept in IMAPKIT_DEAD.
type StoredDeadLetter struct {
	// Seq is the letter's sequence in IMAPKIT_DEAD, which Replay takes.
	Seq uint64 `json:"seq"`
	// Record is the letter: the event, the sink (its String), the last
	// try's error, the number of tries and when the last one failed.
	Record delivery.DeadRecord `json:"record"`
	// Sink is the durable name of the SinkConsumer that gave up.
	Sink string `json:"sink"`
	// StreamSeq is the event's sequence in IMAPKIT_EVENTS.
	StreamSeq uint64 `json:"stream_seq"`
	// Malformed says that the body on IMAPKIT_EVENTS was not an event:
	// Record holds only what its subject and headers said, and the
	// letter cannot be replayed.
	Malformed bool `json:"malformed,omitempty"`
}

// DeadLetterStore lists and replays the dead letters of IMAPKIT_DEAD.
//
// A dead letter is a message on imapkit.dead.ACCOUNT.KIND whose body is
// the delivery.DeadRecord of the event, the same JSON as a line of the
// dead-letter file of imapkit watch, with headers HeaderSink and
// HeaderStreamSeq. Any NATS client may read them.
type DeadLetterStore struct {
	js jetstream.JetStream
}

// NewDeadLetters returns the DeadLetterStore of IMAPKIT_DEAD, reached through
// js.
func NewDeadLetters(js jetstream.JetStream) *DeadLetterStore {
	return &DeadLetterStore{js: js}
}

// Letters returns the newest limit dead letters (all of them if limit is 0 or
// less), oldest first. Messages of the stream that are not dead records
// (published by something else) are left out.
func (d *DeadLetterStore) Letters(ctx context.Context, limit int) ([]StoredDeadLetter, error) {
	s, err := d.js.Stream(ctx, StreamDead)
	if err != nil {
		return nil, fmt.Errorf("dead letters: stream %s: %w", StreamDead, err)
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return nil, nil
	}
	if limit <= 0 {
		return d.read(ctx, s, st.FirstSeq, st.LastSeq, 0)
	}
	// Backwards from the last sequence in windows doubling in size, since
	// replayed letters leave gaps: few reads when there are none, not
	// one per letter kept when there are many.
	var out []StoredDeadLetter
	hi, span := st.LastSeq, uint64(limit)
	for len(out) < limit {
		lo := st.FirstSeq
		if hi-st.FirstSeq >= span {
			lo = hi - span + 1
		}
		chunk, err := d.read(ctx, s, lo, hi, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(chunk, out...)
		if lo == st.FirstSeq {
			break
		}
		hi, span = lo-1, 2*span
	}
	return out, nil
}

// read returns the dead letters with sequences from lo to hi, oldest
// first; the last keep of them if keep is positive.
func (d *DeadLetterStore) read(ctx context.Context, s jetstream.Stream, lo, hi uint64, keep int) ([]StoredDeadLetter, error) {
	var out []StoredDeadLetter
	for seq := lo; seq <= hi; {
		// The first message at seq or after: deleted ones are skipped.
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(SubjectDead+".>"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dead letters: read %s at %d: %w", StreamDead, seq, err)
		}
		if m.Sequence > hi {
			break
		}
		if l, err := decodeDeadLetter(m); err == nil {
			out = append(out, l)
		}
		seq = m.Sequence + 1
	}
	if keep > 0 && len(out) > keep {
		out = out[len(out)-keep:]
	}
	return out, nil
}

// decodeDeadLetter decodes a message of IMAPKIT_DEAD.
func decodeDeadLetter(m *jetstream.RawStreamMsg) (StoredDeadLetter, error) {
	l := StoredDeadLetter{Seq: m.Sequence, Sink: m.Header.Get(HeaderSink), Malformed: m.Header.Get(HeaderMalformed) == "true"}
	if err := json.Unmarshal(m.Data, &l.Record); err != nil {
		return StoredDeadLetter{}, fmt.Errorf("dead letter %d: not a dead record: %w", m.Sequence, err)
	}
	if v := m.Header.Get(HeaderStreamSeq); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return StoredDeadLetter{}, fmt.Errorf("dead letter %d: header %s: %w", m.Sequence, HeaderStreamSeq, err)
		}
		l.StreamSeq = n
	}
	return l, nil
}

// Replay puts the event of the dead letter seq back on IMAPKIT_EVENTS, on
// its subject imapkit.events.ACCOUNT.KIND, then deletes the letter: if the
// sink fails again, a new letter comes.
//
// The event keeps its ID in its body, since it is the same event, but not
// as Nats-Msg-Id, which the stream would deduplicate against the first
// publish: that is ID:replay:SEQ, so replaying one letter twice (a retried
// call) publishes it once. Header HeaderReplayOf holds the event's ID and
// HeaderReplayFor the sink's durable name: SinkConsumers of other sinks,
// which have the event already, skip it, but any other consumer of
// IMAPKIT_EVENTS sees it again.
//
// A letter that is gone is ErrNoDeadLetter; a letter of a body that
// was not an event (StoredDeadLetter.Malformed) cannot be replayed.
func (d *DeadLetterStore) Replay(ctx context.Context, seq uint64) error {
	s, err := d.js.Stream(ctx, StreamDead)
	if err != nil {
		return fmt.Errorf("replay dead letter %d: stream %s: %w", seq, StreamDead, err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("replay dead letter %d: %w", seq, ErrNoDeadLetter)
	}
	if err != nil {
		return fmt.Errorf("replay dead letter %d: %w", seq, err)
	}
	l, err := decodeDeadLetter(m)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if l.Malformed {
		return fmt.Errorf("replay dead letter %d: the body on %s was not an event (%s): nothing to replay", seq, StreamEvents, l.Record.Err)
	}
	// The event as the letter holds it, byte for byte.
	var raw struct {
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(m.Data, &raw); err != nil || len(raw.Event) == 0 || l.Record.Event.ID == "" {
		return fmt.Errorf("replay dead letter %d: no event in the record", seq)
	}
	// The letter's subject mirrors the event's: imapkit.dead.A.K came
	// from imapkit.events.A.K.
	rest, ok := strings.CutPrefix(m.Subject, SubjectDead+".")
	if !ok {
		return fmt.Errorf("replay dead letter %d: subject %q is not under %s", seq, m.Subject, SubjectDead)
	}
	id := l.Record.Event.ID
	out := nats.NewMsg(SubjectEvents + "." + rest)
	out.Data = raw.Event
	out.Header.Set(HeaderReplayOf, id)
	if l.Sink != "" {
		out.Header.Set(HeaderReplayFor, l.Sink)
	}
	if _, err := d.js.PublishMsg(ctx, out,
		jetstream.WithMsgID(id+":replay:"+strconv.FormatUint(seq, 10)),
		jetstream.WithExpectStream(StreamEvents)); err != nil {
		return fmt.Errorf("replay dead letter %d: publish event %s: %w", seq, id, err)
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		// The event is back; a second call publishes nothing new (the
		// same Nats-Msg-Id) and deletes the letter.
		return fmt.Errorf("replay dead letter %d: event %s published again, but the letter could not be deleted: %w", seq, id, err)
	}
	return nil
}

// publishDeadLetter publishes rec, the dead letter of sink (its durable
// name) for the message of IMAPKIT_EVENTS at streamSeq on subject, to
// IMAPKIT_DEAD, and returns once it is stored. Its Nats-Msg-Id makes a
// second publish for the same message (its acknowledgement was lost, and
// it failed again) a duplicate the stream drops.
func publishDeadLetter(ctx context.Context, js jetstream.JetStream, subject string, rec delivery.DeadRecord, sink string, streamSeq uint64, malformed bool) error {
	body, err := rec.MarshalJSON() // not json.Marshal, which would escape < and > again
	if err != nil {
		return fmt.Errorf("dead letter: encode: %w", err)
	}
	rest, ok := strings.CutPrefix(subject, SubjectEvents+".")
	if !ok {
		return fmt.Errorf("dead letter: subject %q is not under %s", subject, SubjectEvents)
	}
	seq := strconv.FormatUint(streamSeq, 10)
	m := nats.NewMsg(SubjectDead + "." + rest)
	m.Data = body
	m.Header.Set(HeaderSink, sink)
	m.Header.Set(HeaderStreamSeq, seq)
	if malformed {
		m.Header.Set(HeaderMalformed, "true")
	}
	if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID("dead:"+sink+":"+seq), jetstream.WithExpectStream(StreamDead)); err != nil {
		return fmt.Errorf("dead letter: publish to %s: %w", StreamDead, err)
	}
	return nil
}

// List is Letters in the form of the API (GET /v1/dead): the malformed
// letters (not an event, nothing to replay) included, with the error that
// says so.
func (d *DeadLetterStore) List(ctx context.Context, limit int) ([]DeadLetter, error) {
	letters, err := d.Letters(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(letters))
	for i, l := range letters {
		out[i] = DeadLetter{Seq: l.Seq, Event: l.Record.Event, Sink: l.Sink, Error: l.Record.Err, Attempts: l.Record.Attempts, Time: l.Record.Time}
	}
	return out, nil
}
