// Package service runs imapkit serve: the watchers of many accounts, on one
// node or on many, over NATS JetStream, which keeps everything that must
// survive a machine.
//
// What lives where (names.go):
//   - accounts: the KV bucket IMAPKIT_ACCOUNTS, one JSON Account per key,
//     secrets sealed with AES-256-GCM (Sealer);
//   - positions: the KV bucket IMAPKIT_STATE, one watch.AccountState per
//     account, written with the revision read last, so that a node that lost
//     an account cannot move its position (KVStore);
//   - ownership: the KV buckets IMAPKIT_NODES (a heartbeat per live node,
//     expiring after the lease TTL unless renewed) and IMAPKIT_LEASES (one
//     lease per account naming its node, lasting as long as that node's
//     heartbeat), so that each account is watched by exactly one live node
//     (Leases);
//   - events: the stream IMAPKIT_EVENTS, subject imapkit.events.ACCOUNT.KIND,
//     the body the event's JSON (delivery.Event), the Nats-Msg-Id its ID; an
//     event is acknowledged to its watcher once JetStream has acknowledged the
//     publish, so a position moves only over published events;
//   - dead letters: the stream IMAPKIT_DEAD, for the sinks (hooks, webhooks)
//     that consume IMAPKIT_EVENTS and gave up on an event.
package service
