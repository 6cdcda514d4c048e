package natstest

import (
	"strings"
	"testing"

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
