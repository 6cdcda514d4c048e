package service

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func accountNames(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("acct-%02d", i))
	}
	return out
}

func TestLeaseAssign(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, N := range []int{0, 1, 7, 30, 1000} {
		for _, n := range []int{1, 2, 3, 4, 7} {
			accounts := accountNames(N)
			var nodes []string
			for i := range n {
				nodes = append(nodes, fmt.Sprintf("node-%d", i))
			}
			got := leaseAssign(accounts, nodes)
			counts := map[string]int{}
			for _, a := range accounts {
				counts[got[a]]++
			}
			for _, nd := range nodes {
				if c := counts[nd]; c != N/n && c != (N+n-1)/n {
					t.Errorf("%d accounts over %d nodes: %s gets %d", N, n, nd, c)
				}
			}
			// Every node computes the same, whatever order it lists in.
			shuffled := slices.Clone(accounts)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			again := leaseAssign(shuffled, nodes)
			for _, a := range accounts {
				if again[a] != got[a] {
					t.Fatalf("%d over %d: the order of the accounts changes the assignment", N, n)
				}
			}
			// A joining node takes little more than its share.
			if N < 1000 {
				continue
			}
			joined := leaseAssign(accounts, append(slices.Clone(nodes), "node-new"))
			moved := 0
			for _, a := range accounts {
				if joined[a] != got[a] {
					moved++
				}
			}
			if share := N / (n + 1); moved > share+share/5 {
				t.Errorf("%d over %d: a join moves %d accounts, its share is %d", N, n, moved, share)
			}
		}
	}
}
