package model

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestErrorCodeThroughWrapping(t *testing.T) {
	base := &Error{Code: CodeNotFound, Message: "There is no preset \"X\".", Err: io.EOF}
	wrapped := fmt.Errorf("install: %w", base)
	if got := ErrorCode(wrapped); got != CodeNotFound {
		t.Errorf("ErrorCode = %q", got)
	}
	if e := AsError(wrapped); e == nil || e.Message != base.Message {
		t.Errorf("AsError = %v", e)
	}
	if !errors.Is(wrapped, io.EOF) {
		t.Error("the cause is not reachable through Unwrap")
	}
	if got := ErrorCode(errors.New("plain")); got != CodeInternal {
		t.Errorf("a plain error has code %q, want internal", got)
	}
	if got := ErrorCode(nil); got != "" {
		t.Errorf("nil has code %q", got)
	}
}
