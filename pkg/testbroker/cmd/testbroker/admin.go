package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
	"unicode/utf8"

	"seckill/pkg/testbroker"
)

// The admin API exposes the broker's fault hooks and inspection to tests
// that run the broker as a process (-admin). It is for loopback test use
// only: no authentication.
//
//	POST /faults   {"duplicate":3} {"drop_commits":{"GID-x":true}} {"pause":true}
//	               {"latency_ms":50} {"refuse_sends":true}  (fields absent = unchanged)
//	GET  /lag?group=G        {"group":G,"lag":n}
//	GET  /dlq?group=G        {"group":G,"count":n,"messages":[...]}

// faultsRequest is the body of POST /faults. Nil fields leave a fault as it is.
type faultsRequest struct {
	Duplicate   *int            `json:"duplicate"`    // store every later sent message n times (≤1 off)
	DropCommits map[string]bool `json:"drop_commits"` // group → ignore its offset commits
	Pause       *bool           `json:"pause"`        // hold every request (true) or release (false)
	LatencyMS   *int            `json:"latency_ms"`   // delay every request
	RefuseSends *bool           `json:"refuse_sends"` // answer sends SERVICE_NOT_AVAILABLE
}

// dlqMessage is one dead-lettered message as GET /dlq shows it.
type dlqMessage struct {
	MsgID          string `json:"msg_id"`
	Topic          string `json:"real_topic"`
	Tags           string `json:"tags"`
	Keys           string `json:"keys"`
	ReconsumeTimes int32  `json:"reconsume_times"`
	BodyBytes      int    `json:"body_bytes"`
	Body           string `json:"body,omitempty"` // first 256 bytes when valid UTF-8
}

// adminHandler serves the admin API of srv.
func adminHandler(srv *testbroker.Server, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /faults", func(w http.ResponseWriter, r *http.Request) {
		var req faultsRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "message": err.Error()})
			return
		}
		if err := validateFaults(req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "message": err.Error()})
			return
		}
		applyFaults(srv, req)
		log.Info("faults changed", slog.Any("faults", req))
		writeJSON(w, http.StatusOK, req)
	})
	mux.HandleFunc("GET /lag", func(w http.ResponseWriter, r *http.Request) {
		g, ok := groupParam(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"group": g, "lag": srv.Lag(g)})
	})
	mux.HandleFunc("GET /dlq", func(w http.ResponseWriter, r *http.Request) {
		g, ok := groupParam(w, r)
		if !ok {
			return
		}
		msgs := srv.DLQ(g)
		out := make([]dlqMessage, 0, len(msgs))
		for _, m := range msgs {
			d := dlqMessage{MsgID: m.MsgID, Topic: m.Properties["REAL_TOPIC"], Tags: m.Tags, Keys: m.Keys,
				ReconsumeTimes: m.ReconsumeTimes, BodyBytes: len(m.Body)}
			if b := m.Body[:min(len(m.Body), 256)]; utf8.Valid(b) {
				d.Body = string(b)
			}
			out = append(out, d)
		}
		writeJSON(w, http.StatusOK, map[string]any{"group": g, "count": len(out), "messages": out})
	})
	return mux
}

func validateFaults(req faultsRequest) error {
	var errs []error
	if req.Duplicate != nil && *req.Duplicate < 0 {
		errs = append(errs, fmt.Errorf("duplicate: %d is negative", *req.Duplicate))
	}
	if req.LatencyMS != nil && (*req.LatencyMS < 0 || *req.LatencyMS > 60000) {
		errs = append(errs, fmt.Errorf("latency_ms: %d not in 0..60000", *req.LatencyMS))
	}
	for g := range req.DropCommits {
		if g == "" {
			errs = append(errs, errors.New("drop_commits: empty group"))
		}
	}
	return errors.Join(errs...)
}

func applyFaults(srv *testbroker.Server, req faultsRequest) {
	if req.Duplicate != nil {
		srv.DuplicateDelivery(*req.Duplicate)
	}
	for g, on := range req.DropCommits {
		srv.DropOffsetCommits(g, on)
	}
	if req.LatencyMS != nil {
		srv.Latency(time.Duration(*req.LatencyMS) * time.Millisecond)
	}
	if req.RefuseSends != nil {
		srv.RefuseSends(*req.RefuseSends)
	}
	if req.Pause != nil {
		if *req.Pause {
			srv.Pause()
		} else {
			srv.Resume()
		}
	}
}

func groupParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	g := r.URL.Query().Get("group")
	if g == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "message": "group: required"})
		return "", false
	}
	return g, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		fmt.Fprintf(&b, `{"error":"internal","message":%q}`+"\n", err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
