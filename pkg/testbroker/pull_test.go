package testbroker

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// wireConn is a raw client connection for protocol-level tests.
type wireConn struct {
	t  *testing.T
	nc net.Conn
}

func dialWire(t *testing.T, srv *Server) *wireConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", srv.BrokerAddr(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &wireConn{t: t, nc: nc}
}

func (w *wireConn) send(cmd *command) {
	w.t.Helper()
	cmd.Language, cmd.Version = "GO", 317
	if _, err := w.nc.Write(encodeFrame(cmd)); err != nil {
		w.t.Fatal(err)
	}
}

// read returns the next frame, or nil when none arrives within d.
func (w *wireConn) read(d time.Duration) *command {
	w.t.Helper()
	w.nc.SetReadDeadline(time.Now().Add(d))
	cmd, err := readFrame(w.nc, DefaultMaxFrame)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil
	}
	if err != nil {
		w.t.Fatalf("read frame: %v", err)
	}
	return cmd
}

func heldPull(opaque int32, topicName string, offset int64, suspend time.Duration, subscription string) *command {
	ext := map[string]string{
		"consumerGroup": "G", "topic": topicName, "queueId": "0", "queueOffset": strconv.FormatInt(offset, 10),
		"maxMsgNums": "32", "sysFlag": "6", "suspendTimeoutMillis": strconv.FormatInt(suspend.Milliseconds(), 10),
		"subscription": subscription,
	}
	return &command{Code: 11, Opaque: opaque, ExtFields: ext}
}

func sendTo(opaque int32, topicName, tags, body string) *command {
	return &command{Code: 10, Opaque: opaque, Body: []byte(body), ExtFields: map[string]string{
		"producerGroup": "PG", "topic": topicName, "queueId": "0", "sysFlag": "0", "bornTimestamp": "0", "flag": "0",
		"properties": primitive.PropertyTags + "\x01" + tags + "\x02", "reconsumeTimes": "0", "maxReconsumeTimes": "16",
	}}
}

// TestHeldPull drives PULL_MESSAGE holds over the wire: an append answers
// every pull held on the queue (sent from the same connection or another),
// a hold ends with 19 at its timeout, a deleted topic answers 17, and a
// message the filter rejects does not answer the hold: the next matching
// one does, or the timeout answers 19 past the skipped ones (as real
// RocketMQ holds a pull until a matching message arrives).
func TestHeldPull(t *testing.T) {
	t.Parallel()
	srv := Start(t, func(o *Options) { o.MaxPullHold = 5 * time.Second })
	expect := func(t *testing.T, w *wireConn, opaque int32, code int16, next int64, msgs int) {
		t.Helper()
		resp := w.read(3 * time.Second)
		if resp == nil {
			t.Fatalf("no answer to request %d", opaque)
		}
		if resp.Opaque != opaque || resp.Code != code || resp.ext("nextBeginOffset") != strconv.FormatInt(next, 10) {
			t.Fatalf("answer = opaque %d code %d nextBeginOffset %s, want %d, %d, %d",
				resp.Opaque, resp.Code, resp.ext("nextBeginOffset"), opaque, code, next)
		}
		if got := len(primitive.DecodeMessage(resp.Body)); got != msgs {
			t.Fatalf("answer %d carries %d messages, want %d", opaque, got, msgs)
		}
	}
	t.Run("answered by a send on the same and on another connection", func(t *testing.T) {
		topicName := unique(t, "T")
		srv.CreateTopic(topicName, 1)
		consumer, other := dialWire(t, srv), dialWire(t, srv)
		consumer.send(heldPull(1, topicName, 0, 5*time.Second, "*"))
		other.send(heldPull(2, topicName, 0, 5*time.Second, "*"))
		if resp := consumer.read(100 * time.Millisecond); resp != nil {
			t.Fatalf("pull answered before any message: code %d", resp.Code)
		}
		consumer.send(sendTo(3, topicName, "a", "m0"))
		// The send's answer and the pull's arrive on consumer in either order.
		got := map[int32]*command{}
		for range 2 {
			if resp := consumer.read(3 * time.Second); resp != nil {
				got[resp.Opaque] = resp
			}
		}
		if got[1] == nil || got[1].Code != codeSuccess || got[3] == nil || got[3].Code != codeSuccess {
			t.Fatalf("answers on the sending connection = %v, want the pull (1) and the send (3) both 0", got)
		}
		expect(t, other, 2, codeSuccess, 1, 1)
	})
	t.Run("timeout answers 19 at the request offset", func(t *testing.T) {
		topicName := unique(t, "T")
		srv.CreateTopic(topicName, 1)
		w := dialWire(t, srv)
		start := time.Now()
		w.send(heldPull(1, topicName, 0, 300*time.Millisecond, "*"))
		expect(t, w, 1, codePullNotFound, 0, 0)
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("held %v, want about the 300 ms asked for", d)
		}
	})
	t.Run("deleted topic answers 17", func(t *testing.T) {
		topicName := unique(t, "T")
		srv.CreateTopic(topicName, 1)
		w := dialWire(t, srv)
		w.send(heldPull(1, topicName, 0, 5*time.Second, "*"))
		time.Sleep(50 * time.Millisecond) // let the pull be held
		srv.DeleteTopic(topicName)
		resp := w.read(3 * time.Second)
		if resp == nil || resp.Code != codeTopicNotExist {
			t.Fatalf("answer after DeleteTopic = %v, want code %d", resp, codeTopicNotExist)
		}
	})
	t.Run("filtered messages keep the hold", func(t *testing.T) {
		topicName := unique(t, "T")
		srv.CreateTopic(topicName, 1)
		w, producer := dialWire(t, srv), dialWire(t, srv)
		w.send(heldPull(1, topicName, 0, 5*time.Second, "b"))
		time.Sleep(50 * time.Millisecond)
		producer.send(sendTo(2, topicName, "a", "skipped"))
		producer.send(sendTo(3, topicName, "a", "skipped too"))
		if resp := w.read(200 * time.Millisecond); resp != nil {
			t.Fatalf("hold answered by messages its filter rejects: code %d", resp.Code)
		}
		producer.send(sendTo(4, topicName, "b", "wanted"))
		expect(t, w, 1, codeSuccess, 3, 1)
		// A hold that times out after skipped messages answers past them.
		producer.send(sendTo(5, topicName, "a", "skipped at the end"))
		time.Sleep(50 * time.Millisecond)
		w.send(heldPull(6, topicName, 3, 300*time.Millisecond, "b"))
		expect(t, w, 6, codePullNotFound, 4, 0)
	})
	t.Run("closed connection drops the hold", func(t *testing.T) {
		topicName := unique(t, "T")
		srv.CreateTopic(topicName, 1)
		w := dialWire(t, srv)
		w.send(heldPull(1, topicName, 0, 5*time.Second, "*"))
		time.Sleep(50 * time.Millisecond)
		w.nc.Close()
		waitFor(t, 5*time.Second, "the hold to go", func() bool {
			srv.mu.Lock()
			defer srv.mu.Unlock()
			return len(srv.topics[topicName].queues[0].waiters) == 0
		})
		producer := dialWire(t, srv)
		producer.send(sendTo(2, topicName, "a", "after close"))
		if resp := producer.read(3 * time.Second); resp == nil || resp.Code != codeSuccess {
			t.Fatalf("send after the consumer left = %v, want 0", resp)
		}
	})
}
