package natstest

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStartAndCluster(t *testing.T) {
	s := Start(t)
	_, js := Connect(t, s.ClientURL())
	if _, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "T"}); err != nil {
		t.Fatal(err)
	}
	servers := Cluster(t, 3)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	_, js = Connect(t, strings.Join(urls, ","))
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "R3", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// TestTap: what a client publishes through a Tap reaches the server and
// subscribers, and the Tap records the messages on its prefix, with their
// Nats-Msg-Id; once the server is gone, the Tap turns clients away.
func TestTap(t *testing.T) {
	s := Start(t)
	tap := NewTap(t, s.Addr().String(), "x.")
	sub, _ := Connect(t, s.ClientURL())
	got, err := sub.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	pub, _ := Connect(t, tap.URL())
	m := nats.NewMsg("x.a")
	m.Header.Set("Nats-Msg-Id", "id-1")
	m.Data = []byte("one")
	pub.PublishMsg(m)
	pub.Publish("y.b", []byte("two"))
	pub.Publish("x.c", bytes.Repeat([]byte("3"), 100_000))
	pub.Flush()
	for _, want := range []string{"x.a", "y.b", "x.c"} {
		m, err := got.NextMsg(5 * time.Second)
		if err != nil || m.Subject != want {
			t.Fatalf("subscriber got %v (%v), want %s", m, err, want)
		}
	}
	pubs := tap.Pubs()
	if len(pubs) != 2 || pubs[0].Subject != "x.a" || pubs[0].MsgID != "id-1" || pubs[1].Subject != "x.c" || pubs[1].MsgID != "" {
		t.Errorf("tap recorded %+v", pubs)
	}
	s.Shutdown()
	s.WaitForShutdown()
	if nc, err := nats.Connect(tap.URL(), nats.Timeout(2*time.Second)); err == nil {
		nc.Close()
		t.Error("connected through the tap to a server that is gone")
	}
}

// TestProcCluster: three nats-server processes form a JetStream cluster
// with R3 streams; with one killed, the other two keep them going.
func TestProcCluster(t *testing.T) {
	procs := ProcCluster(t, 3)
	var urls []string
	for _, p := range procs {
		urls = append(urls, p.ClientURL)
	}
	_, js := Connect(t, strings.Join(urls, ","))
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "R3", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(t.Context(), "k", []byte("v1")); err != nil {
		t.Fatal(err)
	}
	procs[0].Kill()
	if procs[0].Running() {
		t.Fatal("killed, still running")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := kv.Put(t.Context(), "k", []byte("v2"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("put with one server of three killed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := procs[0].Start(); err != nil {
		t.Fatal(err)
	}
	if err := procs[0].WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}
