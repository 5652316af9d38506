from vla_data.cli import main

main()
