package graphsim

import (
	"encoding/json"
	"io"
	"net/http"
)

// adminRoutes serves the admin API under /_simulator, a path no Graph client uses:
//
//	GET  /_simulator/faults                       current Faults (JSON, durations as "250ms")
//	PUT  /_simulator/faults                       replace Faults
//	GET  /_simulator/limits                       current Limits (window as "20s")
//	PUT  /_simulator/limits                       replace Limits (zero fields take defaults)
//	GET  /_simulator/options                      current ResponseOptions
//	PUT  /_simulator/options                      replace ResponseOptions (absent fields: false)
//	GET  /_simulator/counters                     Counters
//	DELETE /_simulator/counters                   reset Counters
//	POST /_simulator/keys/rotate                  RotateSigningKey
//	GET  /_simulator/sites/{siteId}/servers/{serverId}  stored server object
//
// It needs no token: it is for tests and scripts on loopback.
func (s *Simulator) adminRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+adminPrefix+"/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.faults.get())
	})
	mux.HandleFunc("PUT "+adminPrefix+"/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if !decodeAdmin(w, r, &f) {
			return
		}
		if err := s.SetFaults(f); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.faults.get())
	})
	mux.HandleFunc("GET "+adminPrefix+"/limits", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.throttle.get())
	})
	mux.HandleFunc("PUT "+adminPrefix+"/limits", func(w http.ResponseWriter, r *http.Request) {
		var l Limits
		if !decodeAdmin(w, r, &l) {
			return
		}
		if err := s.SetLimits(l); err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, s.throttle.get())
	})
	mux.HandleFunc("GET "+adminPrefix+"/options", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.ResponseOptions())
	})
	mux.HandleFunc("PUT "+adminPrefix+"/options", func(w http.ResponseWriter, r *http.Request) {
		var o ResponseOptions
		if !decodeAdmin(w, r, &o) {
			return
		}
		s.SetResponseOptions(o)
		writeJSON(w, http.StatusOK, s.ResponseOptions())
	})
	mux.HandleFunc("GET "+adminPrefix+"/counters", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Counters())
	})
	mux.HandleFunc("DELETE "+adminPrefix+"/counters", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST "+adminPrefix+"/keys/rotate", s.handleAdminRotate)
	mux.HandleFunc("GET "+adminPrefix+"/sites/{siteId}/servers/{serverId}",
		func(w http.ResponseWriter, r *http.Request) {
			server, ok := s.Server(r.PathValue("siteId"), r.PathValue("serverId"))
			if !ok {
				adminError(w, http.StatusNotFound, "no such server")
				return
			}
			writeJSON(w, http.StatusOK, server)
		})
	return mux
}

func (s *Simulator) handleAdminRotate(w http.ResponseWriter, _ *http.Request) {
	if err := s.RotateSigningKey(); err != nil {
		adminError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.keys.jwks())
}

// decodeAdmin reads a JSON body of at most 64 KiB into v, rejecting unknown fields.
func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return false
	}
	return true
}

func adminError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"error": message})
}
