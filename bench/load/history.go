package main

import (
	"database/sql"
	"fmt"

	_ "github.com/mattn/go-sqlite3" // the collector's history
)

// historyIDs counts the rows of each site/message id in the collector's
// history, read-only.
func historyIDs(path string) (map[string]int, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=5000")
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT site, message_id FROM measurements`)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var site, id string
		if err := rows.Scan(&site, &id); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		out[site+"/"+id]++
	}
	return out, rows.Err()
}
