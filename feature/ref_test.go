package feature

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
	}{
		{"user.total_transaction_amount[7d]", Ref{Text: "user.total_transaction_amount[7d]", Feature: "user.total_transaction_amount", Entity: "user", Window: Window{7 * Day}}},
		{"user.total_transaction_amount[all]", Ref{Text: "user.total_transaction_amount[all]", Feature: "user.total_transaction_amount", Entity: "user", Window: WindowAll}},
		{"merchant.count_declined[1w]", Ref{Text: "merchant.count_declined[1w]", Feature: "merchant.count_declined", Entity: "merchant", Window: Window{Week}}},
		{"  user.x[1h30m] ", Ref{Text: "user.x[1h30m]", Feature: "user.x", Entity: "user", Window: Window{90 * Minute}}},
		{"User-2.a_b-c[30m]", Ref{Text: "User-2.a_b-c[30m]", Feature: "User-2.a_b-c", Entity: "User-2", Window: Window{30 * Minute}}},
	}
	for _, tt := range tests {
		got, err := ParseRef(tt.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRef(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if got.String() != got.Text {
			t.Errorf("String() = %q, want %q", got.String(), got.Text)
		}
	}
}

func TestParseRefErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"user.total_transaction_amount", "has no window: add one in brackets, e.g. user.total_transaction_amount[7d] or user.total_transaction_amount[all]"},
		{"", "empty feature reference"},
		{"user.x[]", "empty window"},
		{"user.x[7x]", `unknown unit "x"`},
		{"user.x[0d]", "greater than zero"},
		{"user.x[7d", "one window in brackets at the end"},
		{"user.x7d]", "missing ["},
		{"user.x[7d][30d]", "one window"},
		{"user.x[7d]suffix", "one window"},
		{"total[7d]", "must be <entity>.<name>"},
		{".total[7d]", "must be <entity>.<name>"},
		{"user.[7d]", "must be <entity>.<name>"},
		{"user.a.b[7d]", "name part"},
		{"us er.a[7d]", "entity part"},
		{"user.a b[7d]", "name part"},
	}
	for _, tt := range tests {
		_, err := ParseRef(tt.in)
		if err == nil {
			t.Errorf("ParseRef(%q): no error, want %q", tt.in, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRef(%q) error %q does not contain %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"user.total_transaction_amount[7d]", "user.x[all]", "user.x", "user.x[]", "a.b[1h30m]", " a.b[2w] ", "a.b.c[1d]", "[7d]", "a.b[7d]]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRef(s)
		if err != nil {
			return
		}
		if r.Text != strings.TrimSpace(s) {
			t.Fatalf("ParseRef(%q).Text = %q", s, r.Text)
		}
		if !strings.HasPrefix(r.Feature, r.Entity+".") || !validName(r.Entity) {
			t.Fatalf("ParseRef(%q) = %+v: bad entity/feature split", s, r)
		}
		canon := r.Feature + "[" + r.Window.String() + "]"
		back, err := ParseRef(canon)
		if err != nil {
			t.Fatalf("ParseRef(%q) (canonical form of %q): %v", canon, s, err)
		}
		if back.Feature != r.Feature || back.Entity != r.Entity || back.Window != r.Window || back.Text != canon {
			t.Fatalf("round trip of %q via %q: %+v != %+v", s, canon, back, r)
		}
	})
}
