package writebudget

import (
	"context"
	"fmt"
	"sync"
)

// Slot is one write the budget let go. Until Answered is called the budget counts the write as
// reaching Graph at the latest moment it could.
type Slot struct {
	store store
	write write
	once  sync.Once
}

// Answered dates the write now: its answer came back, or its try ended without one, so Graph
// has counted it by now if it ever will. Call it as soon as the try ends, whatever its outcome;
// only the first call counts, and a nil Slot does nothing.
//
// It returns a *UnavailableError when Redis cannot be reached. The write then keeps its date
// of grant plus flight, which is safe but holds its slot longer than needed.
func (s *Slot) Answered(ctx context.Context) error {
	if s == nil {
		return nil
	}
	var err error
	s.once.Do(func() {
		if redateErr := s.store.redate(ctx, s.write); redateErr != nil {
			err = &UnavailableError{Err: fmt.Errorf("date write by its answer: %w", redateErr)}
		}
	})
	return err
}
