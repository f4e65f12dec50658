package feature

import "fmt"

// exampleConfig is the configuration example of the design document.
const exampleConfig = `store: .tessera                  # directory or URL (file://, s3://bucket/prefix); default .tessera beside this file
sources:
  transactions:
    path: data/transactions.parquet   # file, glob or directory of .parquet or .csv
    timestamp: ts
entities:
  user: {key: user_id}           # key column in the sources; also the spine's default key column
  merchant: {key: merchant_id}
features:
  user.total_transaction_amount:   # <entity>.<name>; grouped by the entity's key unless ` + "`key:`" + ` says otherwise
    source: transactions
    aggregation: sum               # count | sum | mean | min | max | var | std
    value: amount                  # not needed for count
    windows: [7d, 30d, all]
    materialization: {bucket_duration: 1h}
  user.count_transactions:
    source: transactions
    aggregation: count
    windows: [1d, 7d]
    materialization:
      bucket_duration: 10m
      bucket_start: 2020-01-01T00:00:00Z   # grid origin (default: the Unix epoch)
      backfill_start_time: 2025-01-01T00:00:00Z   # do not tile earlier events
      backfill_schedule: "0 * * * *"     # cron or an interval like 15m: scheduled incremental backfill
      backfill_lookback_duration: 2h     # re-tile this much before the last watermark (late events)
  merchant.count_declined:
    source: transactions
    aggregation: count
    filter: {column: status, equals: declined}
    windows: [1d, 7d]
    materialization: {bucket_duration: 1h}
`

func ExampleParseRef() {
	r, err := ParseRef("user.total_transaction_amount[1w]")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Entity, r.Feature, r.Window, r.Window.Micros)
	_, err = ParseRef("user.total_transaction_amount")
	fmt.Println(err)
	// Output:
	// user user.total_transaction_amount 7d 604800000000
	// feature reference "user.total_transaction_amount" has no window: add one in brackets, e.g. user.total_transaction_amount[7d] or user.total_transaction_amount[all]
}

func ExampleParse() {
	c, err := Parse("tessera.yaml", []byte(exampleConfig))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ts := range c.TileSets() {
		fmt.Println(ts.ID, ts.Needs, ts.Features)
	}
	// Output:
	// transactions.merchant_id.count.1h-5177a8d5 count [merchant.count_declined]
	// transactions.user_id.amount.1h-562b87ed count,sum [user.total_transaction_amount]
	// transactions.user_id.count.10m-7a4e82ac count [user.count_transactions]
}
