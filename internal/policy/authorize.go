package policy

import (
	"fmt"
	"strings"

	"tunnelgateway/internal/callers"
)

// Reasons a request is denied, stable for logs and metrics.
const (
	ReasonUnknownCaller   = "unknown_caller"
	ReasonReadNotGranted  = "read_not_granted"
	ReasonWriteNotGranted = "write_not_granted"
	ReasonSiteNotGranted  = "site_not_granted"
	ReasonPropertyRefused = "property_not_granted"
)

// Denied is the one error a decision returns: the caller is known to be who it says, but the
// policy does not allow what it asks. Its message names the refused property or site and is
// safe to return to the caller.
type Denied struct {
	// Caller is the caller as "kind:name", or "kind:id" when the policy does not know it.
	Caller string
	// AppID is the Entra application id of a caller that presented a token; "" for API keys.
	AppID string
	// Properties are the refused properties, in the order asked, for ReasonPropertyRefused.
	Properties []string
	// Site is the site asked for.
	Site string
	// Reason is one of the Reason constants.
	Reason string
}

func (d *Denied) Error() string {
	switch d.Reason {
	case ReasonUnknownCaller:
		if d.AppID != "" {
			// The token was good, so the application is real; only its policy entry is missing.
			return fmt.Sprintf("caller entra:%s is not in the policy: no entry has this appId",
				d.AppID)
		}
		return fmt.Sprintf("caller %s is not in the policy", d.Caller)
	case ReasonReadNotGranted:
		return fmt.Sprintf("caller %s may not read tunnel servers", d.Caller)
	case ReasonWriteNotGranted:
		return fmt.Sprintf("caller %s may not change tunnel servers", d.Caller)
	case ReasonSiteNotGranted:
		return fmt.Sprintf("caller %s may not touch site %s", d.Caller, d.Site)
	case ReasonPropertyRefused:
		if len(d.Properties) == 1 {
			return fmt.Sprintf("caller %s may not change property %s", d.Caller, d.Properties[0])
		}
		return fmt.Sprintf("caller %s may not change properties %s", d.Caller,
			strings.Join(d.Properties, ", "))
	default:
		return fmt.Sprintf("caller %s is denied: %s", d.Caller, d.Reason)
	}
}

// AuthorizeWrite allows a change of properties on a server of siteID, or says why not. Every
// property not granted is named, in the order given, so the caller learns all at once. id and
// @odata.type need no grant, but a body made only of them still needs some write grant.
func (p *Policy) AuthorizeWrite(c callers.Caller, siteID string, properties []string) error {
	e, err := p.admit(c, siteID)
	if err != nil {
		return err
	}
	if len(e.properties) == 0 {
		return p.deny(c, siteID, ReasonWriteNotGranted)
	}
	var refused []string
	for _, prop := range properties {
		if !ungatedProperties[prop] && !e.properties[prop] {
			refused = append(refused, prop)
		}
	}
	if refused != nil {
		d := p.deny(c, siteID, ReasonPropertyRefused)
		d.Properties = refused
		return d
	}
	return nil
}

// AuthorizeRead allows reading a server of siteID, or says why not.
func (p *Policy) AuthorizeRead(c callers.Caller, siteID string) error {
	e, err := p.admit(c, siteID)
	if err != nil {
		return err
	}
	if !e.read {
		return p.deny(c, siteID, ReasonReadNotGranted)
	}
	return nil
}

// admit finds the caller's entry and checks the site, the two steps every decision shares.
func (p *Policy) admit(c callers.Caller, siteID string) (*entry, *Denied) {
	e := p.lookup(c)
	if e == nil {
		return nil, p.deny(c, siteID, ReasonUnknownCaller)
	}
	if e.sites != nil && !e.sites[strings.ToLower(siteID)] {
		return nil, p.deny(c, siteID, ReasonSiteNotGranted)
	}
	return e, nil
}

// deny names the caller as this policy knows it, whatever name the request was given, so that
// a message never disagrees with the policy that made the decision.
func (p *Policy) deny(c callers.Caller, siteID, reason string) *Denied {
	c.Name = p.Name(c)
	d := &Denied{Caller: c.String(), Site: siteID, Reason: reason}
	if c.Kind == callers.KindEntra {
		d.AppID = c.ID
	}
	return d
}
