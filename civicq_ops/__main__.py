from civicq_ops.cli.app import main

main()
