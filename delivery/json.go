package delivery

import (
	"bytes"
	"encoding/json"
)

// marshal returns v's compact JSON without a trailing newline. Every JSON
// the package writes — a --json line, a hook's stdin line, a webhook body,
// a dead record — goes through it, so that the same event is the same bytes
// everywhere (a webhook's signature can be checked against a logged line).
// HTML escaping is off: Message-IDs are full of < and >, and \u003c helps
// no reader.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// line returns ev's JSON followed by a newline: a line of a JSON stream or
// of a hook's stdin.
func (ev Event) line() ([]byte, error) {
	b, err := marshal(ev)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
