from django.db import migrations

from evidence import triggers


def install(apps, schema_editor):
    triggers.install(schema_editor)


def remove(apps, schema_editor):
    triggers.remove(schema_editor)


class Migration(migrations.Migration):
    dependencies = [("evidence", "0002_initial")]

    operations = [migrations.RunPython(install, remove)]
