package feature

import (
	"strings"
	"testing"
)

func TestCheckSource(t *testing.T) {
	c, err := Parse("tessera.yaml", []byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	good := []Column{
		{"ts", KindTimestamp}, {"user_id", KindString}, {"merchant_id", KindInt64},
		{"amount", KindFloat64}, {"status", KindString},
	}
	if err := c.CheckSource("transactions", good); err != nil {
		t.Fatalf("good schema: %v", err)
	}
	replace := func(name string, col Column) []Column {
		out := make([]Column, 0, len(good))
		for _, g := range good {
			if g.Name == name {
				if col.Name != "" {
					out = append(out, col)
				}
				continue
			}
			out = append(out, g)
		}
		return out
	}
	tests := []struct {
		name string
		cols []Column
		want []string
	}{
		{"timestamp missing", replace("ts", Column{"event_time", KindTimestamp}),
			[]string{`tessera.yaml: source transactions: timestamp column "ts" is not in source transactions; columns: event_time timestamp, user_id string`, "set timestamp: of the source"}},
		{"timestamp as int64", replace("ts", Column{"ts", KindInt64}), nil},
		{"timestamp as string", replace("ts", Column{"ts", KindString}), nil},
		{"timestamp as float", replace("ts", Column{"ts", KindFloat64}),
			[]string{`timestamp column "ts" of source transactions is float64, want timestamp or int64 or string`}},
		{"key missing", replace("user_id", Column{"userid", KindString}),
			[]string{`tessera.yaml: feature user.count_transactions: key column "user_id" is not in source transactions (did you mean userid?)`,
				`feature user.total_transaction_amount: key column "user_id"`, "set key: on the feature or on entity user"}},
		{"key is float", replace("merchant_id", Column{"merchant_id", KindFloat64}),
			[]string{`feature merchant.count_declined: key column "merchant_id" of source transactions is float64, want int64 or string`}},
		{"value missing", replace("amount", Column{}),
			[]string{`feature user.total_transaction_amount: value column "amount" is not in source transactions`}},
		{"value not numeric", replace("amount", Column{"amount", KindString}),
			[]string{`feature user.total_transaction_amount: value column "amount" of source transactions is string, want int64 or float64; set value: to a numeric column`}},
		{"value int64", replace("amount", Column{"amount", KindInt64}), nil},
		{"filter column missing", replace("status", Column{}),
			[]string{`feature merchant.count_declined: filter column "status" is not in source transactions`}},
		{"filter value never matches", replace("status", Column{"status", KindInt64}),
			[]string{`feature merchant.count_declined: filter equals "declined" never matches column "status" (int64): it is not a valid int64`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.CheckSource("transactions", tt.cols)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%s\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
	if err := c.CheckSource("payments", good); err == nil || !strings.Contains(err.Error(), `source "payments" is not declared under sources (declared: transactions)`) {
		t.Errorf("unknown source: %v", err)
	}
}

func TestFilterValueFits(t *testing.T) {
	tests := []struct {
		v, kind string
		ok      bool
	}{
		{"3", KindInt64, true}, {"3.5", KindInt64, false}, {"3.5", KindFloat64, true}, {"x", KindFloat64, false},
		{"true", KindBool, true}, {"yes", KindBool, false}, {"anything", KindString, true},
		{"2024-01-01T00:00:00Z", KindTimestamp, true}, {"2024-01-01", KindTimestamp, false},
	}
	for _, tt := range tests {
		if err := filterValueFits(tt.v, tt.kind); (err == nil) != tt.ok {
			t.Errorf("filterValueFits(%q, %s) = %v, want ok=%v", tt.v, tt.kind, err, tt.ok)
		}
	}
}
