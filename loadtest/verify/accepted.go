package verify

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// The accepted-orders file the load tool hands to the verifier: a header line
// "# product <product_id>" and then one order_id a client got a 202 for per
// line (each once).

// WriteAccepted writes productID and ids to path.
func WriteAccepted(path, productID string, ids []string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "# product %s\n", productID)
	for _, id := range ids {
		fmt.Fprintln(w, id)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// ReadAccepted reads a file written by WriteAccepted. productID is "" when
// the file has no header.
func ReadAccepted(path string) (productID string, ids []string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("open accepted orders: %w", err)
	}
	defer f.Close()
	ids = []string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case strings.HasPrefix(l, "#"):
			if rest, ok := strings.CutPrefix(l, "# product "); ok {
				productID = strings.TrimSpace(rest)
			}
		default:
			ids = append(ids, l)
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("read %s: %w", path, err)
	}
	return productID, ids, nil
}
