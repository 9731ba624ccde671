// Command verify checks the invariants of a sale across the four databases
// and Redis (see package verify) and lists every violation with its order_id.
// It exits 0 only when all hold, 1 on a violation, 2 when it cannot read a store.
//
//	verify -accepted .load/accepted.txt            # product from the file's header
//	verify -product p1 -db-prefix e2e_abc_ -redis-db 9
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"seckill/loadtest/verify"
)

func main() {
	var (
		conn      verify.Conn
		product   = flag.String("product", "", "product ID (default: the accepted file's header)")
		accepted  = flag.String("accepted", "", "file of order IDs clients got a 202 for, and of those whose pay was answered 200 (written by the load tool); empty skips those checks")
		unsettled = flag.Bool("allow-unsettled", false, "accept orders still created or paid (pay timeout pending)")
		jsonOut   = flag.String("json", "", "also write the result as JSON to this file")
		timeout   = flag.Duration("timeout", 2*time.Minute, "give up reading after this long")
	)
	conn.RegisterFlags(flag.CommandLine)
	flag.Parse()
	os.Exit(run(conn, *product, *accepted, *unsettled, *jsonOut, *timeout))
}

func run(conn verify.Conn, product, accepted string, unsettled bool, jsonOut string, timeout time.Duration) int {
	opts := verify.Options{ProductID: product, AllowUnsettled: unsettled}
	if accepted != "" {
		a, err := verify.ReadAnswers(accepted)
		if err != nil {
			fmt.Fprintln(os.Stderr, "verify:", err)
			return 2
		}
		opts.Accepted, opts.Paid = a.Accepted, a.Paid
		if opts.ProductID == "" {
			opts.ProductID = a.ProductID
		}
	}
	if opts.ProductID == "" {
		fmt.Fprintln(os.Stderr, "verify: no product: set -product or -accepted with a \"# product\" header")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stores, err := verify.Open(ctx, conn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "verify:", err)
		return 2
	}
	defer stores.Close()
	res, err := verify.Run(ctx, stores, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "verify:", err)
		return 2
	}
	for _, v := range res.Violations {
		fmt.Println("VIOLATION", v)
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "verify:", err)
			return 2
		}
	}
	if !res.OK() {
		fmt.Printf("FAIL %s\n", res.Summary())
		return 1
	}
	fmt.Printf("OK %s\n", res.Summary())
	return 0
}
