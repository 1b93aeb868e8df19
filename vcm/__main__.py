from vcm.cli import main

main()
