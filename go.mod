module github.com/strata-llm/strata

go 1.26

require (
	github.com/klauspost/compress v1.20.4 // indirect
	golang.org/x/sys v0.43.0 // indirect
)
