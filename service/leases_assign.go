package service

import (
	"cmp"
	"slices"
)

// leaseAssign decides which node should watch each account: rendezvous hashing
// with bounded loads. Every node computes it from the same inputs (the
// accounts that exist, the keys of IMAPKIT_NODES) and gets the same answer,
// so the nodes agree on the goal without talking to each other.
//
// Each node watches len(accounts)/len(nodes) accounts, or one more (as many
// nodes get one more as the division leaves over), so the spread is as even
// as it can be. Accounts are placed one by one in an order that depends on
// the account names only; each goes to the node that ranks it highest
// (hash of node and account) among the nodes with room left. Adding or
// removing a node therefore moves few more accounts than the minimum (the
// share of the node that came or went): the ranks of the other nodes do not
// change, and the bounded loads only push a few accounts to their second
// choice.
//
// nodes must be non-empty and free of duplicates; accounts free of
// duplicates. The result maps every account to a node.
func leaseAssign(accounts, nodes []string) map[string]string {
	out := make(map[string]string, len(accounts))
	if len(nodes) == 0 {
		return out
	}
	q, r := len(accounts)/len(nodes), len(accounts)%len(nodes)
	order := slices.Clone(accounts)
	keys := make(map[string]uint64, len(order))
	for _, a := range order {
		keys[a] = leaseMix(leaseFNV(leaseFNVOffset, a))
	}
	slices.SortFunc(order, func(a, b string) int {
		if c := cmp.Compare(keys[a], keys[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	// The hash state of each node's name, so that ranking an account
	// costs one short hash per node.
	seeds := make([]uint64, len(nodes))
	for i, n := range nodes {
		seeds[i] = leaseFNV(leaseFNVOffset, n+"\x00")
	}
	load := make([]int, len(nodes))
	full := 0 // nodes that took q+1 accounts
	for _, a := range order {
		best, bestRank := -1, uint64(0)
		for i, n := range nodes {
			if load[i] > q || (load[i] == q && full == r) {
				continue
			}
			rank := leaseMix(leaseFNV(seeds[i], a))
			if best < 0 || rank > bestRank || (rank == bestRank && n < nodes[best]) {
				best, bestRank = i, rank
			}
		}
		out[a] = nodes[best]
		load[best]++
		if load[best] == q+1 {
			full++
		}
	}
	return out
}

// FNV-1a, written out so that a node's name can be hashed once and each
// account continued from there. The hash is fixed (unlike hash/maphash's
// per-process seed) so that every node ranks alike.
const (
	leaseFNVOffset = 14695981039346656037
	leaseFNVPrime  = 1099511628211
)

// leaseFNV continues an FNV-1a hash from state (leaseFNVOffset to begin) over s.
func leaseFNV(state uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		state ^= uint64(s[i])
		state *= leaseFNVPrime
	}
	return state
}

// leaseMix spreads the bits of an FNV hash (the finalizer of SplitMix64): FNV
// alone leaves names that differ in their last bytes close together, which
// would rank nodes alike for similar account names.
func leaseMix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
