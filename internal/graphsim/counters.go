package graphsim

import (
	"fmt"
	"maps"
	"sync"
)

// Counters is a snapshot of what the simulator served.
type Counters struct {
	// Requests counts Graph and Entra requests by "METHOD route-template status", for example
	// "PATCH /beta/deviceManagement/microsoftTunnelSites/{siteId}/microsoftTunnelServers/{serverId} 200".
	// A reset connection counts with status 0. Admin requests are not counted.
	Requests map[string]int64 `json:"requests"`
	// TokenRequests counts calls to the token endpoint, successful or not.
	TokenRequests int64 `json:"tokenRequests"`
	// TokenRequestsByClient counts token endpoint calls by the client_id sent.
	TokenRequestsByClient map[string]int64 `json:"tokenRequestsByClient"`
	// TokensIssued counts access tokens issued.
	TokensIssued int64 `json:"tokensIssued"`
	// Throttled counts 429 answers.
	Throttled int64 `json:"throttled"`
	// PatchesApplied counts PATCHes merged into the store (including applied-500 faults).
	PatchesApplied int64 `json:"patchesApplied"`
	// FaultsInjected counts requests answered by an injected fault.
	FaultsInjected int64 `json:"faultsInjected"`
}

// RequestKey is the key of Counters.Requests.
func RequestKey(method, route string, status int) string {
	return fmt.Sprintf("%s %s %d", method, route, status)
}

// Count returns the number of requests with that method, route template and status.
func (c Counters) Count(method, route string, status int) int64 {
	return c.Requests[RequestKey(method, route, status)]
}

type counterSet struct {
	mu sync.Mutex
	c  Counters
}

func newCounterSet() *counterSet {
	cs := &counterSet{}
	cs.reset()
	return cs
}

func (cs *counterSet) reset() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.c = Counters{Requests: map[string]int64{}, TokenRequestsByClient: map[string]int64{}}
}

func (cs *counterSet) snapshot() Counters {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.c
	c.Requests = maps.Clone(cs.c.Requests)
	c.TokenRequestsByClient = maps.Clone(cs.c.TokenRequestsByClient)
	return c
}

func (cs *counterSet) update(f func(c *Counters)) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	f(&cs.c)
}

func (cs *counterSet) request(method, route string, status int) {
	cs.update(func(c *Counters) { c.Requests[RequestKey(method, route, status)]++ })
}

func (cs *counterSet) tokenRequest(clientID string) {
	cs.update(func(c *Counters) {
		c.TokenRequests++
		c.TokenRequestsByClient[clientID]++
	})
}

func (cs *counterSet) tokenIssued()   { cs.update(func(c *Counters) { c.TokensIssued++ }) }
func (cs *counterSet) throttled()     { cs.update(func(c *Counters) { c.Throttled++ }) }
func (cs *counterSet) patchApplied()  { cs.update(func(c *Counters) { c.PatchesApplied++ }) }
func (cs *counterSet) faultInjected() { cs.update(func(c *Counters) { c.FaultsInjected++ }) }
