package feature

import (
	"fmt"
	"strings"
)

// Ref is a feature reference as written in a query or a spine request:
// <entity>.<feature>[<window>], e.g. user.total_transaction_amount[7d].
type Ref struct {
	Text    string // as written, surrounding spaces removed; names the output column
	Feature string // feature name, e.g. "user.total_transaction_amount"
	Entity  string // part of Feature before the first dot, e.g. "user"
	Window  Window
}

// String returns the reference as written.
func (r Ref) String() string { return r.Text }

// ParseRef parses a feature reference. The window is required: a reference
// without one is an error telling how to add it.
func ParseRef(s string) (Ref, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return Ref{}, fmt.Errorf("empty feature reference: want <entity>.<feature>[<window>], e.g. user.total_amount[7d]")
	}
	open := strings.IndexByte(text, '[')
	if open < 0 {
		if strings.HasSuffix(text, "]") {
			return Ref{}, fmt.Errorf("feature reference %q: missing [ before the window: want <entity>.<feature>[<window>], e.g. user.total_amount[7d]", text)
		}
		return Ref{}, fmt.Errorf("feature reference %q has no window: add one in brackets, e.g. %s[7d] or %s[all]", text, text, text)
	}
	if !strings.HasSuffix(text, "]") || strings.Count(text, "[") != 1 || strings.Count(text, "]") != 1 {
		return Ref{}, fmt.Errorf("feature reference %q: want <entity>.<feature>[<window>] with one window in brackets at the end, e.g. user.total_amount[7d]", text)
	}
	name := text[:open]
	entity, _, err := splitFeatureName(name)
	if err != nil {
		return Ref{}, fmt.Errorf("feature reference %q: %w", text, err)
	}
	win := text[open+1 : len(text)-1]
	if win == "" {
		return Ref{}, fmt.Errorf("feature reference %q has an empty window: write one in the brackets, e.g. %s[7d] or %s[all]", text, name, name)
	}
	w, err := ParseWindow(win)
	if err != nil {
		return Ref{}, fmt.Errorf("feature reference %q: %w", text, err)
	}
	return Ref{Text: text, Feature: name, Entity: entity, Window: w}, nil
}

// splitFeatureName splits <entity>.<name> and checks both parts.
func splitFeatureName(s string) (entity, name string, err error) {
	entity, name, ok := strings.Cut(s, ".")
	if !ok || entity == "" || name == "" {
		return "", "", fmt.Errorf("feature name %q must be <entity>.<name>, e.g. user.total_amount", s)
	}
	if !validName(entity) {
		return "", "", fmt.Errorf("feature name %q: entity part %q may use only letters, digits, _ and -", s, entity)
	}
	if !validName(name) {
		return "", "", fmt.Errorf("feature name %q: name part %q may use only letters, digits, _ and - (one dot separates the entity)", s, name)
	}
	return entity, name, nil
}

// validName reports whether s is a non-empty run of ASCII letters, digits,
// underscores and hyphens: the names of entities and features.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
