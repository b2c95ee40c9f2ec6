module github.com/strata-llm/strata

go 1.26
