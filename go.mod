module github.com/strata-llm/strata

go 1.26.0

require (
	github.com/klauspost/compress v1.20.4
	golang.org/x/sys v0.48.0
)
