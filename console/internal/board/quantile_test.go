package board

import (
	"testing"
)

func TestQuantile(t *testing.T) {
	bs := func(counts ...float64) []bucket {
		uppers := []float64{0.001, 0.01, 0.1}
		out := make([]bucket, len(counts))
		for i, c := range counts {
			out[i] = bucket{uppers[i], c}
		}
		return out
	}
	tests := []struct {
		name     string
		q        float64
		buckets  []bucket
		total    float64
		want     float64
		wantOver bool
		wantOK   bool
	}{
		{"no observation", 0.99, bs(0, 0, 0), 0, 0, false, false},
		{"all in the first bucket: from 0", 0.5, bs(10, 10, 10), 10, 0.0005, false, true},
		{"interpolated in the second bucket", 0.99, bs(50, 100, 100), 100, 0.001 + 0.009*49/50, false, true},
		{"empty buckets are skipped", 0.99, bs(0, 0, 10), 10, 0.01 + 0.09*9.9/10, false, true},
		{"past the last finite bucket", 0.99, bs(10, 20, 30), 100, 0.1, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, over, ok := quantile(tc.q, tc.buckets, tc.total)
			if !approx(got, tc.want) || over != tc.wantOver || ok != tc.wantOK {
				t.Errorf("quantile(%v, %v, %v) = %v, %v, %v, want %v, %v, %v", tc.q, tc.buckets, tc.total, got, over, ok, tc.want, tc.wantOver, tc.wantOK)
			}
		})
	}
}

func TestWindowBuckets(t *testing.T) {
	prev := []bucket{{0.001, 5}, {0.01, 8}}
	cur := []bucket{{0.001, 9}, {0.01, 20}}
	got, total := windowBuckets(cur, prev, 21, 8)
	if want := []bucket{{0.001, 4}, {0.01, 12}}; total != 13 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("windowBuckets = %v, %v, want %v, 13", got, total, want)
	}
	// The process restarted (counts went down): the current read is the window.
	got, total = windowBuckets([]bucket{{0.001, 1}, {0.01, 2}}, prev, 2, 8)
	if total != 2 || got[1].count != 2 {
		t.Errorf("windowBuckets after a restart = %v, %v, want the current buckets and 2", got, total)
	}
}
