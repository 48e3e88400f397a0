# Review campaigns, items, decisions and remediation arrive with the campaigns work (issue 5).
