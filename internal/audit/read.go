package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadEvents reads an audit file back, for tests and for checking a trail after a crash. A
// last line without its newline is what a crash mid-write leaves behind; it is skipped when
// it does not parse. Any other line that does not parse is an error naming its line number.
func ReadEvents(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	defer f.Close()
	return DecodeEvents(f)
}

// DecodeEvents reads JSON-lines events from r, with ReadEvents' tolerance for a torn last line.
func DecodeEvents(r io.Reader) ([]Event, error) {
	var events []Event
	br := bufio.NewReader(r)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return events, fmt.Errorf("read audit events: line %d: %w", lineNo, err)
		}
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			var e Event
			if jsonErr := json.Unmarshal(trimmed, &e); jsonErr != nil {
				if !complete {
					return events, nil // torn last line
				}
				return events, fmt.Errorf("decode audit event: line %d: %w", lineNo, jsonErr)
			}
			events = append(events, e)
		}
		if err != nil {
			return events, nil
		}
	}
}
