from django.db import migrations

PROCESSES = [
    ("journal_entries", "Journal entries"),
    ("financial_close", "Financial close and reporting"),
    ("payables", "Procure to pay (payables)"),
    ("receivables", "Order to cash (receivables)"),
    ("payroll", "Payroll"),
    ("treasury", "Treasury and cash"),
    ("fixed_assets", "Fixed assets"),
    ("inventory", "Inventory"),
    ("tax", "Tax"),
    ("itgc", "IT general controls"),
]


def add_processes(apps, schema_editor):
    FinancialProcess = apps.get_model("entitlements", "FinancialProcess")
    for code, name in PROCESSES:
        FinancialProcess.objects.update_or_create(code=code, defaults={"name": name})


def remove_processes(apps, schema_editor):
    apps.get_model("entitlements", "FinancialProcess").objects.filter(
        code__in=[c for c, _ in PROCESSES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("entitlements", "0002_initial")]

    operations = [migrations.RunPython(add_processes, remove_processes)]
