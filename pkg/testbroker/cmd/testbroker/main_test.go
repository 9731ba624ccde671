package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTopics(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]int
		wantErr bool
	}{
		{"", map[string]int{}, false},
		{"ORDER:4,SOLDOUT:1", map[string]int{"ORDER": 4, "SOLDOUT": 1}, false},
		{"A, B:2", map[string]int{"A": 4, "B": 2}, false},
		{"A:x", map[string]int{}, true},
		{"A:0", map[string]int{}, true},
	}
	for _, tc := range tests {
		got, err := parseTopics(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseTopics(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseTopics(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}
