package verify

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// The accepted-orders file the load tool hands to the verifier: a header line
// "# product <product_id>", one order_id a client got a 202 for per line
// (each once), then a line "# paid" and one order_id per line whose pay a
// client saw answered 200. A reader that knows only the first part reads
// the paid IDs as accepted ones again, which they are.

// Answers is what the clients were answered in a sale.
type Answers struct {
	ProductID string
	Accepted  []string // 202 to POST /api/v1/orders
	Paid      []string // 200 to POST /api/v1/payments/{id}; nil: not recorded
}

const paidHeader = "# paid"

// WriteAnswers writes a to path.
func WriteAnswers(path string, a Answers) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "# product %s\n", a.ProductID)
	for _, id := range a.Accepted {
		fmt.Fprintln(w, id)
	}
	if a.Paid != nil {
		fmt.Fprintln(w, paidHeader+": pay answered 200")
		for _, id := range a.Paid {
			fmt.Fprintln(w, id)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// ReadAnswers reads a file written by WriteAnswers. ProductID is "" when
// the file has no header, Paid nil when it has no paid part.
func ReadAnswers(path string) (Answers, error) {
	f, err := os.Open(path)
	if err != nil {
		return Answers{}, fmt.Errorf("open accepted orders: %w", err)
	}
	defer f.Close()
	a := Answers{Accepted: []string{}}
	into := &a.Accepted
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case l == "":
		case strings.HasPrefix(l, paidHeader):
			a.Paid = []string{}
			into = &a.Paid
		case strings.HasPrefix(l, "#"):
			if rest, ok := strings.CutPrefix(l, "# product "); ok {
				a.ProductID = strings.TrimSpace(rest)
			}
		default:
			*into = append(*into, l)
		}
	}
	if err := sc.Err(); err != nil {
		return Answers{}, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}
