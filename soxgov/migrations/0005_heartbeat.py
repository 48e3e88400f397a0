from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("soxgov", "0004_job")]

    operations = [
        migrations.CreateModel(
            name="Heartbeat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("source", models.CharField(max_length=40, unique=True)),
                ("at", models.DateTimeField()),
            ],
        ),
    ]
