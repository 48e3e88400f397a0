from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evidence import signing
from evidence.services import Actor


class Command(BaseCommand):
    help = (
        "Evidence signing key (Ed25519). 'create --out PATH' writes a new private key (PEM PKCS#8, mode 0600) for "
        "SOXGOV_SIGNING_KEY_FILE; 'show' prints the configured key's fingerprint and public key, registering it in "
        "the evidence chain if it has never signed."
    )

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="subcommand", required=True)
        create = commands.add_parser(
            "create", help="Write a new private key to a file that does not exist yet."
        )
        create.add_argument("--out", required=True, help="Where to write the private key (PEM).")
        commands.add_parser("show", help="The configured key's fingerprint and public key (PEM).")

    def handle(self, *args, subcommand, **options):
        if subcommand == "create":
            self._create(Path(options["out"]))
        else:
            self._show()

    def _create(self, path: Path) -> None:
        if not path.parent.is_dir():
            raise CommandError(f"{path.parent} is not a directory")
        pem = signing.new_private_key_pem()
        try:
            signing.private_key_write(path, pem)
        except FileExistsError:
            raise CommandError(
                f"{path} exists; refusing to overwrite a key (choose a new file name)"
            ) from None
        public = signing.public_key_of(pem)
        self.stdout.write(f"wrote {path} (mode 0600); back it up, then set SOXGOV_SIGNING_KEY_FILE={path}")
        self._print_key(public)

    def _show(self) -> None:
        public = signing.current_public_key()
        _key, registered = signing.signing_key_register(
            public_key_hex=public.public_key_hex, actor=Actor.system("command:signing_key")
        )
        self._print_key(public)
        if registered:
            self.stdout.write("registered now as the current signing key (recorded in the evidence chain)")

    def _print_key(self, public: signing.PublicKey) -> None:
        self.stdout.write(f"fingerprint: {public.fingerprint}")
        self.stdout.write(f"             {signing.group(public.fingerprint)}")
        self.stdout.write(f"public key (hex): {public.public_key_hex}")
        self.stdout.write(public.pem.rstrip("\n"))
