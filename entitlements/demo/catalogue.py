"""The demo company's applications, entitlements and who typically holds what. Pure data."""

# (name, description, sox_in_scope, criticality, financial process codes, owner department)
APPLICATIONS = [
    ("ERP General Ledger", "Chart of accounts, journals, period close.", True, "critical",
     ["journal_entries", "financial_close", "fixed_assets"], "Accounting"),
    ("Accounts Payable", "Vendors, invoices and payment proposals.", True, "critical", ["payables"], "Accounting"),
    ("Accounts Receivable", "Customer invoices, cash application, credit memos.", True, "high", ["receivables"],
     "Accounting"),
    ("Payroll", "Salaries, rates and payroll runs.", True, "critical", ["payroll"], "Human Resources"),
    ("Bank Portal", "Corporate online banking: payment files and releases.", True, "critical", ["treasury", "payables"],
     "Treasury"),
    ("Corporate Directory", "Identity provider and groups; the ITGC backbone.", True, "high", ["itgc"], "IT Operations"),
    ("Consolidation and Reporting", "Group consolidation and external reporting.", True, "high", ["financial_close"],
     "Finance"),
    ("Treasury Management", "Deals, FX, cash positioning.", True, "medium", ["treasury"], "Treasury"),
    ("Procurement", "Requisitions and purchase orders.", True, "medium", ["payables", "inventory"], "Procurement"),
    ("HR System", "Employee master data and org structure.", True, "medium", ["payroll"], "Human Resources"),
    ("CRM", "Sales pipeline and customer contacts.", False, "low", [], "Sales"),
]

# application -> [(entitlement_id, name, kind, privileged, sensitive)]
ENTITLEMENTS = {
    "ERP General Ledger": [
        ("GL_VIEW", "GL inquiry", "role", False, False),
        ("GL_JE_CREATE", "Create journal entries", "role", False, True),
        ("GL_JE_APPROVE", "Approve journal entries", "role", False, True),
        ("GL_PERIOD_CLOSE", "Open and close periods", "permission", True, True),
        ("GL_COA_MAINT", "Maintain chart of accounts", "permission", True, True),
        ("GL_ADMIN", "ERP system administrator", "role", True, True),
    ],
    "Accounts Payable": [
        ("AP_VIEW", "AP inquiry", "role", False, False),
        ("AP_VENDOR_CREATE", "Create and edit vendors", "role", False, True),
        ("AP_INVOICE_ENTER", "Enter invoices", "role", False, False),
        ("AP_PAYMENT_APPROVE", "Approve payments", "role", False, True),
        ("AP_PAYMENT_RUN", "Run payment proposals", "permission", True, True),
    ],
    "Accounts Receivable": [
        ("AR_VIEW", "AR inquiry", "role", False, False),
        ("AR_INVOICE_CREATE", "Create customer invoices", "role", False, False),
        ("AR_CASH_APPLY", "Apply cash receipts", "role", False, True),
        ("AR_CREDIT_MEMO", "Issue credit memos", "role", False, True),
        ("AR_WRITE_OFF", "Write off receivables", "permission", True, True),
    ],
    "Payroll": [
        ("PAY_VIEW", "Payroll inquiry", "role", False, True),
        ("PAY_EMPLOYEE_MAINT", "Maintain pay data", "role", False, True),
        ("PAY_RATE_CHANGE", "Change pay rates", "permission", False, True),
        ("PAY_RUN", "Run payroll", "permission", True, True),
    ],
    "Bank Portal": [
        ("BANK_VIEW", "Balances and statements", "role", False, False),
        ("BANK_PAYMENT_CREATE", "Create payments", "role", False, True),
        ("BANK_PAYMENT_RELEASE", "Release payments", "role", True, True),
        ("BANK_ADMIN", "Portal administrator", "role", True, True),
    ],
    "Corporate Directory": [
        ("CN=All Staff", "All Staff", "group", False, False),
        ("CN=VPN Users", "VPN Users", "group", False, False),
        ("CN=Finance Users", "Finance Users", "group", False, False),
        ("CN=Helpdesk Operators", "Helpdesk Operators", "group", True, False),
        ("CN=Domain Admins", "Domain Admins", "group", True, True),
    ],
    "Consolidation and Reporting": [
        ("REP_VIEW", "View consolidated results", "role", False, False),
        ("REP_ADJUST", "Post consolidation adjustments", "role", False, True),
        ("REP_PUBLISH", "Publish reports", "permission", True, True),
    ],
    "Treasury Management": [
        ("TRE_VIEW", "Treasury inquiry", "role", False, False),
        ("TRE_DEAL_ENTER", "Enter deals", "role", False, True),
        ("TRE_DEAL_APPROVE", "Approve deals", "role", False, True),
    ],
    "Procurement": [
        ("REQ_CREATE", "Create requisitions", "role", False, False),
        ("PO_CREATE", "Create purchase orders", "role", False, False),
        ("PO_APPROVE", "Approve purchase orders", "role", False, True),
    ],
    "HR System": [
        ("HR_VIEW", "Employee directory", "role", False, False),
        ("HR_EMPLOYEE_MAINT", "Maintain employee records", "role", False, True),
        ("HR_ADMIN", "HR system administrator", "role", True, True),
    ],
    "CRM": [
        ("CRM_USER", "CRM user", "role", False, False),
        ("CRM_ADMIN", "CRM administrator", "role", True, False),
    ],
}

# department -> (head count share, titles, [(application, entitlement_id, share of staff holding it)])
EVERYONE = [("Corporate Directory", "CN=All Staff", 1.0), ("Corporate Directory", "CN=VPN Users", 0.7),
            ("HR System", "HR_VIEW", 0.5)]
DEPARTMENTS = {
    "Accounting": (0.09, ["Staff Accountant", "Senior Accountant", "GL Accountant", "AP Specialist", "AR Specialist"], [
        ("ERP General Ledger", "GL_VIEW", 1.0), ("ERP General Ledger", "GL_JE_CREATE", 0.6),
        ("Accounts Payable", "AP_VIEW", 0.6), ("Accounts Payable", "AP_INVOICE_ENTER", 0.35),
        ("Accounts Payable", "AP_VENDOR_CREATE", 0.12), ("Accounts Receivable", "AR_VIEW", 0.5),
        ("Accounts Receivable", "AR_CASH_APPLY", 0.25), ("Accounts Receivable", "AR_INVOICE_CREATE", 0.25),
        ("Corporate Directory", "CN=Finance Users", 1.0),
    ]),
    "Finance": (0.06, ["Financial Analyst", "FP&A Analyst", "Reporting Manager"], [
        ("ERP General Ledger", "GL_VIEW", 1.0), ("Consolidation and Reporting", "REP_VIEW", 1.0),
        ("Consolidation and Reporting", "REP_ADJUST", 0.3), ("Corporate Directory", "CN=Finance Users", 1.0),
    ]),
    "Treasury": (0.02, ["Treasury Analyst", "Cash Manager"], [
        ("Bank Portal", "BANK_VIEW", 1.0), ("Bank Portal", "BANK_PAYMENT_CREATE", 0.6),
        ("Treasury Management", "TRE_VIEW", 1.0), ("Treasury Management", "TRE_DEAL_ENTER", 0.5),
        ("Corporate Directory", "CN=Finance Users", 1.0),
    ]),
    "Procurement": (0.05, ["Buyer", "Category Manager"], [
        ("Procurement", "REQ_CREATE", 1.0), ("Procurement", "PO_CREATE", 0.8), ("Accounts Payable", "AP_VIEW", 0.4),
    ]),
    "Human Resources": (0.05, ["HR Generalist", "Payroll Specialist", "Recruiter"], [
        ("HR System", "HR_EMPLOYEE_MAINT", 0.6), ("Payroll", "PAY_VIEW", 0.5), ("Payroll", "PAY_EMPLOYEE_MAINT", 0.3),
    ]),
    "IT Operations": (0.08, ["Systems Engineer", "Helpdesk Analyst", "Identity Engineer", "DBA"], [
        ("Corporate Directory", "CN=Helpdesk Operators", 0.4), ("Corporate Directory", "CN=Domain Admins", 0.08),
    ]),
    "Engineering": (0.22, ["Software Engineer", "Senior Engineer", "QA Engineer", "Product Manager"], [
        ("CRM", "CRM_USER", 0.1),
    ]),
    "Sales": (0.22, ["Account Executive", "Sales Development Rep", "Sales Engineer"], [("CRM", "CRM_USER", 1.0)]),
    "Customer Support": (0.12, ["Support Agent", "Support Lead"], [("CRM", "CRM_USER", 0.9)]),
    "Marketing": (0.06, ["Marketing Manager", "Content Strategist"], [("CRM", "CRM_USER", 0.5)]),
    "Legal": (0.02, ["Counsel", "Paralegal"], []),
}

# Entitlements managers in a department hold in addition to their staff's.
MANAGER_EXTRAS = {
    "Accounting": [("ERP General Ledger", "GL_JE_APPROVE"), ("Accounts Payable", "AP_PAYMENT_APPROVE"),
                   ("Accounts Payable", "AP_VENDOR_CREATE"), ("Accounts Receivable", "AR_CREDIT_MEMO")],
    "Finance": [("ERP General Ledger", "GL_PERIOD_CLOSE"), ("Consolidation and Reporting", "REP_PUBLISH")],
    "Treasury": [("Bank Portal", "BANK_PAYMENT_RELEASE"), ("Treasury Management", "TRE_DEAL_APPROVE")],
    "Procurement": [("Procurement", "PO_APPROVE")],
    "Human Resources": [("Payroll", "PAY_RATE_CHANGE"), ("Payroll", "PAY_RUN")],
    "IT Operations": [("Corporate Directory", "CN=Domain Admins")],
}

# (employee_id, display name, kind, owner department, [(application, entitlement_id)])
NON_HUMAN = [
    ("SVC-GL-BATCH", "svc-gl-batch", "service", "IT Operations", [("ERP General Ledger", "GL_JE_CREATE")]),
    ("SVC-AP-IMPORT", "svc-ap-invoice-import", "service", "IT Operations", [("Accounts Payable", "AP_INVOICE_ENTER")]),
    ("SVC-BANK-SFTP", "svc-bank-sftp", "service", "Treasury", [("Bank Portal", "BANK_PAYMENT_CREATE")]),
    ("SVC-PAYROLL-FEED", "svc-payroll-feed", "service", "Human Resources", [("Payroll", "PAY_EMPLOYEE_MAINT")]),
    ("SVC-HR-SYNC", "svc-hr-sync", "service", "IT Operations", [("HR System", "HR_EMPLOYEE_MAINT")]),
    ("SVC-DIR-PROVISION", "svc-directory-provisioning", "service", "IT Operations",
     [("Corporate Directory", "CN=Helpdesk Operators")]),
    ("SVC-REPORTING-ETL", "svc-reporting-etl", "service", "Finance", [("Consolidation and Reporting", "REP_VIEW")]),
    ("SVC-AR-LOCKBOX", "svc-ar-lockbox", "service", "Accounting", [("Accounts Receivable", "AR_CASH_APPLY")]),
    ("SVC-PROC-SYNC", "svc-procurement-sync", "service", "Procurement", [("Procurement", "PO_CREATE")]),
    ("SVC-CRM-SYNC", "svc-crm-sync", "service", "Sales", [("CRM", "CRM_USER")]),
    ("SVC-BACKUP", "svc-backup", "service", "IT Operations", [("Corporate Directory", "CN=Domain Admins")]),
    ("SVC-MONITORING", "svc-monitoring", "service", "IT Operations", [("Corporate Directory", "CN=All Staff")]),
    ("SYS-ERP-SCHED", "ERP job scheduler", "system", "IT Operations", [("ERP General Ledger", "GL_PERIOD_CLOSE")]),
    ("SYS-TREASURY-GW", "Treasury payment gateway", "system", "Treasury", [("Bank Portal", "BANK_VIEW")]),
    ("SYS-CONSOL", "Consolidation engine", "system", "Finance", [("Consolidation and Reporting", "REP_ADJUST")]),
    ("SYS-SIEM", "SIEM collector", "system", "IT Operations", [("Corporate Directory", "CN=All Staff")]),
    ("BOT-AP-RECON", "AP reconciliation bot", "bot", "Accounting", [("Accounts Payable", "AP_VIEW")]),
    ("BOT-JE-RPA", "Journal upload RPA bot", "bot", "Accounting", [("ERP General Ledger", "GL_JE_CREATE")]),
    ("BOT-AR-DUNNING", "AR dunning bot", "bot", "Accounting", [("Accounts Receivable", "AR_VIEW")]),
    ("BOT-HR-ONBOARD", "Onboarding bot", "bot", "Human Resources", [("HR System", "HR_VIEW")]),
    ("BOT-HELPDESK", "Helpdesk password-reset bot", "bot", "IT Operations",
     [("Corporate Directory", "CN=Helpdesk Operators")]),
    ("BOT-CLOSE-CHECK", "Close checklist bot", "bot", "Finance", [("ERP General Ledger", "GL_VIEW")]),
    ("KEY-BANK-API", "Bank API key (payments)", "api_key", "Treasury", [("Bank Portal", "BANK_PAYMENT_CREATE")]),
    ("KEY-FX-RATES", "FX rates feed key", "api_key", "Treasury", [("Treasury Management", "TRE_VIEW")]),
    ("KEY-ERP-INTEGRATION", "ERP integration key", "api_key", "IT Operations", [("ERP General Ledger", "GL_VIEW")]),
    ("KEY-PAYROLL-PROVIDER", "Payroll provider API key", "api_key", "Human Resources", [("Payroll", "PAY_VIEW")]),
    ("KEY-CRM-WEBHOOK", "CRM webhook key", "api_key", "Sales", [("CRM", "CRM_USER")]),
    ("KEY-PROCUREMENT-PUNCHOUT", "Procurement punch-out key", "api_key", "Procurement", [("Procurement", "REQ_CREATE")]),
    ("SVC-LEGACY-FTP", "svc-legacy-ftp", "service", None, [("Accounts Payable", "AP_PAYMENT_RUN")]),
    ("SVC-OLD-REPORTS", "svc-old-reports", "service", "Finance", [("ERP General Ledger", "GL_VIEW")]),
]

FIRST_NAMES = (
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Daniel Lisa Matthew Nancy Anthony Betty Mark Sandra Donald Ashley Steven "
    "Kimberly Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George Deborah Priya "
    "Wei Aisha Mateo Sofia Lars Ingrid Kenji Yuki Omar Fatima Diego Lucia Chen Ana Tomasz Olga Arjun Nadia Emeka "
    "Zainab Pierre Camille"
).split()
LAST_NAMES = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson "
    "Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell "
    "Mitchell Carter Roberts Patel Kowalski Novak Tanaka Sato Haddad Okafor Lindqvist Dubois Rossi Muller Kim Singh"
).split()
