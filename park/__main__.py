from park.cli import main

main()
