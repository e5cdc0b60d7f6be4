package handlers

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"tunnelgateway/internal/audit"
	"tunnelgateway/internal/graphclient"
	"tunnelgateway/internal/policy"
)

// getServer reads one tunnel server through to Graph.
func (s *server) getServer(c *gin.Context) {
	x := exchangeOf(c)
	siteID, serverID := pathIDs(c)
	if !s.readAllowed(x, siteID, serverID) {
		return
	}

	x.event = s.newEvent(x, siteID, serverID)
	resp, err := s.Graph.GetServer(c.Request.Context(), siteID, serverID, x.requestID)
	s.answer(x, resp, err)
	s.complete(x)
}

// listServers reads every server of one site, all of Graph's pages followed.
func (s *server) listServers(c *gin.Context) {
	x := exchangeOf(c)
	siteID, _ := pathIDs(c)
	if !s.readAllowed(x, siteID, "") {
		return
	}

	x.event = s.newEvent(x, siteID, "")
	x.event.Verb = audit.VerbList
	list, err := s.Graph.ListServers(c.Request.Context(), siteID, x.requestID)
	s.answerList(x, list, err)
	s.complete(x)
}

// listSites reads every tunnel site. A caller granted only some sites sees only those.
func (s *server) listSites(c *gin.Context) {
	x := exchangeOf(c)
	err := s.Policy.AuthorizeRead(x.caller, "")
	var denied *policy.Denied
	someSites := errors.As(err, &denied) && denied.Reason == policy.ReasonSiteNotGranted
	if err != nil && !someSites {
		s.refuse(x, err)
		return
	}

	x.event = s.newEvent(x, "", "")
	x.event.Verb = audit.VerbList
	list, err := s.Graph.ListSites(c.Request.Context(), x.requestID)
	if err == nil && someSites {
		list.Values = s.readableSites(x, list.Values)
	}
	s.answerList(x, list, err)
	s.complete(x)
}

// readableSites keeps the sites the caller may read.
func (s *server) readableSites(x *exchange, sites []json.RawMessage) []json.RawMessage {
	kept := make([]json.RawMessage, 0, len(sites))
	for _, raw := range sites {
		var site struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &site) == nil && s.Policy.AuthorizeRead(x.caller, site.ID) == nil {
			kept = append(kept, raw)
		}
	}
	return kept
}

// readAllowed checks the path ids and the caller's read grant, answering when either fails.
func (s *server) readAllowed(x *exchange, siteID, serverID string) bool {
	if err := checkIDs(siteID, serverID); err != nil {
		s.refuse(x, err)
		return false
	}
	if err := s.Policy.AuthorizeRead(x.caller, siteID); err != nil {
		s.refuse(x, err)
		return false
	}
	return true
}

type listBody struct {
	Context string            `json:"@odata.context,omitempty"`
	Count   int               `json:"@odata.count"`
	Value   []json.RawMessage `json:"value"`
}

func (s *server) answerList(x *exchange, list *graphclient.List, err error) {
	if err != nil {
		x.upstream = upstreamOf(err)
		x.fail(err)
		return
	}
	body := listBody{Count: len(list.Values), Value: list.Values}
	if x.family == familyGraph {
		body.Context = list.Context
	}
	x.upstream = &audit.Upstream{Status: http.StatusOK, Attempts: list.Attempts,
		Pages: list.Pages}
	if n := len(list.RequestIDs); n > 0 {
		x.upstream.RequestID = list.RequestIDs[n-1]
		x.c.Header(headerGraphRequest, list.RequestIDs[n-1])
	}
	x.c.JSON(http.StatusOK, body)
}
