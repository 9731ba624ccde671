package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFromJSON re-renders a report.json (REPORT_JSON) into a temp dir;
// without it, it renders an empty report, which must still produce every file.
func TestWriteFromJSON(t *testing.T) {
	r := &Report{}
	if p := os.Getenv("REPORT_JSON"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, r); err != nil {
			t.Fatal(err)
		}
	}
	dir := os.Getenv("REPORT_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := r.Write(dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, f := range []string{"report.json", "report.html", "report.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (size %v)", f, err, st)
		}
	}
}
