# Segregation-of-duties rules, violations and mitigations arrive with the SoD engine (issue 4).
