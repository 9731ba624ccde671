package board

import (
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
)

// bucket is one cumulative histogram bucket: count observations ≤ upper.
type bucket struct {
	upper float64
	count float64
}

// buckets returns h's finite buckets, sorted by upper bound, and its total
// count (the +Inf bucket).
func buckets(h *dto.Histogram) ([]bucket, float64) {
	bs := make([]bucket, 0, len(h.GetBucket()))
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		bs = append(bs, bucket{b.GetUpperBound(), float64(b.GetCumulativeCount())})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].upper < bs[j].upper })
	return bs, float64(h.GetSampleCount())
}

// windowBuckets is cur minus prev, bucket by bucket: the observations made
// between two reads of the same histogram. ok is false when the buckets
// differ (the process restarted with other buckets) or a count went down
// (a restart): then cur alone is the window.
func windowBuckets(cur, prev []bucket, curTotal, prevTotal float64) ([]bucket, float64) {
	if len(cur) != len(prev) || curTotal < prevTotal {
		return cur, curTotal
	}
	out := make([]bucket, len(cur))
	for i := range cur {
		if cur[i].upper != prev[i].upper || cur[i].count < prev[i].count {
			return cur, curTotal
		}
		out[i] = bucket{cur[i].upper, cur[i].count - prev[i].count}
	}
	return out, curTotal - prevTotal
}

// quantile estimates the q-quantile of cumulative buckets holding total
// observations as Prometheus's histogram_quantile does: linear
// interpolation inside the bucket the rank falls in, the first bucket
// starting at 0. When the rank falls past the last finite bucket it returns
// that bucket's bound with over set: the quantile is above it. ok is false
// when there is no observation.
func quantile(q float64, bs []bucket, total float64) (v float64, over, ok bool) {
	if total <= 0 || len(bs) == 0 {
		return 0, false, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank && b.count > below {
			return lower + (b.upper-lower)*(rank-below)/(b.count-below), false, true
		}
		lower, below = b.upper, b.count
	}
	return bs[len(bs)-1].upper, true, true
}
